"""Stage 5 - observability [可观测性]: Prometheus metrics in three layers, OpenTelemetry traces across Kafka, correlated logs."""

# Which stage this package is the end state of: it serves that stage's view of the contract.
NUMBER = 5
