//! Gateway API traffic router (HTTPRoute, GRPCRoute, TCPRoute); also answers to argoproj-labs/gatewayAPI.
