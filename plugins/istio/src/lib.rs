//! Istio traffic router: VirtualService route weights and DestinationRule subsets.
