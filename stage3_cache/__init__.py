"""Stage 3 - cache [缓存层：Redis + 本地 LRU]: two-level cache-aside for task reads, single flight, TTL jitter."""

# Which stage this package is the end state of: it serves that stage's view of the contract.
NUMBER = 3
