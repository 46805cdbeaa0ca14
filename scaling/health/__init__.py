"""Pool health: the hourly series (`series`) and their charts (`charts`)."""
