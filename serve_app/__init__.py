"""The Ray Serve gateway: a streaming ingress, one pool per agent, a global Claude budget."""
