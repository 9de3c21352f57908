"""python run.py [group=option ...] [-m]: see README.md."""
import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from cod_pipeline.cli import run_job

    run_job(cfg)


if __name__ == "__main__":
    import sys

    from cod_pipeline.validation import moved_override

    if moved := moved_override(sys.argv[1:]):  # one line, before Hydra's own multi-line error
        print(f"error: {moved}", file=sys.stderr)
        sys.exit(2)
    main()
