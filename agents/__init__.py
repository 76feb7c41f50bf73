"""The page pipeline as a plain library: page schema, agent specs, DAG, planner, retrieval."""
