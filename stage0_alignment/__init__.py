"""Stage 0 - alignment [项目对齐与环境准备]: the contract, the SLOs, the DDL and the skeleton service."""

# Which stage this package is the end state of: it serves that stage's view of the contract.
NUMBER = 0
