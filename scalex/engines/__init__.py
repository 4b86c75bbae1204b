"""Three routes to one result schema: the order-parameter ODE, SGD simulation, linear theory."""
