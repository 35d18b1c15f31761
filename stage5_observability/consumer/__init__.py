"""The consumer: lands the task events of the topic in the database, idempotently, and dead-letters poison."""
