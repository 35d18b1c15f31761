"""Stage 2 - configuration and logging [配置与日志]: typed 12-factor settings, structured redacted logs."""

# Which stage this package is the end state of: it serves that stage's view of the contract.
NUMBER = 2
