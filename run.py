"""python run.py [group=option ...] [-m]: see README.md (the same as the ``cod-run`` script)."""
from cod_pipeline.cli import main

if __name__ == "__main__":
    main()
