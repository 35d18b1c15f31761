"""Stage 1 - MVP, synchronous writes [MVP 同步写库的生产者 API]: the layered API on MySQL."""

# Which stage this package is the end state of: it serves that stage's view of the contract.
NUMBER = 1
