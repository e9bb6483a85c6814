//! NGINX Ingress traffic router: owns a canary Ingress with canary-weight annotations.
