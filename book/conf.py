"""Sphinx's configuration of the course's book (``python -m book.build book`` stages the pages and runs Sphinx).

MyST-NB renders the executed lectures and the exercises (``nb_execution_mode = "off"``: book.build has already
run them), MyST the Markdown pages with ``$...$`` and ``$$...$$`` equations, the Sphinx Book Theme lays them out.
MathJax 3 (its SVG output, which needs no web fonts) is served from the site's own ``_static/mathjax``
(book.build copies it there), so equations render without a network.
"""

project = "Going Deeper"
html_title = "Going Deeper"
author = "the Going Deeper course"
extensions = ["myst_nb"]
exclude_patterns = ["**/notebooks/**", "**.ipynb_checkpoints"]

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"
nb_output_stderr = "remove"  # warnings a library printed while the lecture ran are not part of the lesson

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,
}
html_static_path = ["static"]
html_css_files = ["book.css"]
html_show_sourcelink = False
html_last_updated_fmt = None

# book.build passes mathjax_path: its copy in _static (or a CDN's where the set-up could not fetch it)
mathjax_path = "mathjax/es5/tex-svg-full.js"
mathjax3_config = {"options": {"processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"}}
