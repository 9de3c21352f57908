"""python run.py [group=option ...] [-m]: see README.md."""
import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from cod_pipeline.cli import run_job

    run_job(cfg)


if __name__ == "__main__":
    main()
