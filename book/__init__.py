"""The course as a website (Sphinx with MyST-NB) and as reveal.js slides: see build.py and cells.py."""
