"""Stage 0 - alignment [项目对齐与环境准备]: the contract, the SLOs, the DDL and the skeleton service."""
