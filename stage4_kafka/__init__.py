"""Stage 4 - Kafka [接入 Kafka：异步生产者与幂等]: 202 after the broker's ack, Idempotency-Key, a consumer, a DLQ."""

# Which stage this package is the end state of: it serves that stage's view of the contract.
NUMBER = 4
