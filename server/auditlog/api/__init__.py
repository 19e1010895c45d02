"""The gRPC surface: servicers (thin), message conversion and error-to-status mapping."""
