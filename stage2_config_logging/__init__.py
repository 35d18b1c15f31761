"""Stage 2 - configuration and logging [配置与日志]: typed 12-factor settings, structured redacted logs."""
