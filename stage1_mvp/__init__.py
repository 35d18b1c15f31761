"""Stage 1 - MVP, synchronous writes [MVP 同步写库的生产者 API]: the layered API on MySQL."""
