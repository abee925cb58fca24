"""python -m tollgatecli: the same as the `tollgate` console script."""

from tollgatecli.app import main

if __name__ == "__main__":
    main()
