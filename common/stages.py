"""The stage registry, and how to find a stage package (the reference or a learner's)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Stage:
    number: int
    folder: str
    title: str
    title_zh: str
    adds: str
    backends: tuple[str, ...]

    @property
    def path(self) -> Path:
        return REPO_ROOT / self.folder

    @property
    def exists(self) -> bool:
        return (self.path / "producer" / "__init__.py").is_file()


_DB, _CACHE, _BROKER = "database", "cache", "broker"

STAGES: tuple[Stage, ...] = (
    Stage(0, "stage0_alignment", "Alignment and environment", "项目对齐与环境准备",
          "scope, SLOs, API contract, DDL; the skeleton service", (_DB,)),
    Stage(1, "stage1_mvp", "MVP, synchronous writes", "MVP 同步写库的生产者 API",
          "layered API on MySQL: users, login, tasks", (_DB,)),
    Stage(2, "stage2_config_logging", "Configuration and logging", "配置与日志",
          "typed 12-factor settings; structured, redacted logs", (_DB,)),
    Stage(3, "stage3_cache", "Cache: Redis + local LRU", "缓存层：Redis + 本地 LRU",
          "two-level cache-aside, single flight, jitter", (_DB, _CACHE)),
    Stage(4, "stage4_kafka", "Kafka, async producer, idempotency", "接入 Kafka：异步生产者与幂等",
          "202 after broker ack, Idempotency-Key, consumer, DLQ", (_DB, _CACHE, _BROKER)),
    Stage(5, "stage5_observability", "Observability", "可观测性",
          "Prometheus metrics, OpenTelemetry traces, log correlation", (_DB, _CACHE, _BROKER)),
    Stage(6, "stage6_resilience", "Resilience and rate limiting", "韧性与限流",
          "circuit breakers, retries, token buckets, deadlines", (_DB, _CACHE, _BROKER)),
    Stage(7, "stage7_cicd", "CI/CD and containers", "CI/CD 与容器化",
          "Dockerfile, compose stack, CI workflow", (_DB, _CACHE, _BROKER)),
    Stage(8, "stage8_loadtest", "Load testing and optimisation", "压测与优化",
          "wrk and locust scenarios against the SLOs; profiles", (_DB, _CACHE, _BROKER)),
)


def stage(number: int) -> Stage:
    """Return stage `number`, or raise LookupError naming the valid range."""
    for candidate in STAGES:
        if candidate.number == number:
            return candidate
    raise LookupError(f"there is no stage {number}; stages are 0-{STAGES[-1].number}")


def here() -> str:
    """The stages this repository has, for messages: "0-4"."""
    numbers = [s.number for s in STAGES if s.exists]
    consecutive = numbers == list(range(numbers[0], numbers[-1] + 1)) if numbers else False
    return f"{numbers[0]}-{numbers[-1]}" if consecutive and len(numbers) > 1 else " ".join(map(str, numbers))


def built(number: int) -> Stage:
    """Return stage `number` if this repository has it; else raise LookupError, in one line naming those it has."""
    try:
        found = stage(number)
    except LookupError:
        raise LookupError(f"there is no stage {number}; stages here: {here()}") from None
    if not found.exists:
        raise LookupError(f"stage {number} ({found.folder}) is not in this repository yet; stages here: {here()}")
    return found


def stage_of_path(path: Path) -> Stage | None:
    """Return the stage whose folder holds `path`, if any."""
    resolved = path.resolve()
    for candidate in STAGES:
        if resolved.is_relative_to(candidate.path):
            return candidate
    return None


class NotAStagePackage(Exception):
    """IMPL= names something that cannot be served as a stage."""


@dataclass(frozen=True)
class StagePackage:
    """A folder that can be served: `<name>/producer/__init__.py` with `create_app()`."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def app_spec(self) -> str:
        return f"{self.name}.producer:create_app()"

    @property
    def gunicorn_config(self) -> Path:
        return self.path / "gunicorn.conf.py"

    @property
    def topics(self) -> Path:
        """The topics the stage serves (stage 4 on), which the embedded broker pre-creates."""
        return self.path / "topics.toml"

    def topics_for(self, stage: Stage) -> Path:
        """This package's topics.toml, or the stage's where it declares none yet (an earlier stage, a first draft)."""
        return self.topics if self.topics.is_file() else stage.path / "topics.toml"

    @property
    def consumer_module(self) -> str | None:
        """`<name>.consumer` if the package has a consumer to run beside gunicorn (stage 4 on)."""
        return f"{self.name}.consumer" if (self.path / "consumer" / "__main__.py").is_file() else None

    @classmethod
    def load(cls, path: str | Path) -> "StagePackage":
        """Check that `path` looks like a stage package; raise NotAStagePackage saying why not."""
        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():
            raise NotAStagePackage(f"{path}: no such directory")
        if not folder.name.isidentifier():
            raise NotAStagePackage(f"{path}: the folder name must be a Python identifier")
        if not (folder / "producer" / "__init__.py").is_file():
            raise NotAStagePackage(f"{path}: not a stage package (expected producer/__init__.py "
                                   "defining create_app(); copy one with `make start STAGE=N`)")
        if not (folder / "gunicorn.conf.py").is_file():
            raise NotAStagePackage(f"{path}: not a stage package (expected gunicorn.conf.py)")
        return cls(folder)
