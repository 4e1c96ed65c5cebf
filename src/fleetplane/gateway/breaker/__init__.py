"""L2: circuit breakers made for agents (cost velocity, loops, context growth) and for deployments
(upstream error rate), as a gateway policy over the state floor's breaker engine."""
