"""The course around the library: what the notebooks, the slides and their recording use.

    notebook   what every notebook does first (device, mode, time estimates), the Colab setup cell
    diagram    the pipeline and the UNet drawn as one picture each
    figures    labelled grids, GIFs and the figures of the notebooks and assets/
    exercises  the checkers of the notebooks' exercises, one module per notebook
    record     runs the notebooks and checks their committed outputs (python -m fmnist_ldm.record)

The model code never imports this package (tests/test_imports.py checks it): only the command
line on top of the library (cli.py, evaluate.py) draws its figures from here.
"""
