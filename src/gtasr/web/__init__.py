"""``gtasr serve``: a local web page to upscale images and compare them with bicubic.

:mod:`gtasr.web.jobs` does the work with the public infer API and knows
nothing of the web; :mod:`gtasr.web.page` lays out the Gradio page over it;
:mod:`gtasr.web.server` runs it (temporary folder, no analytics, shutdown).
Gradio is an optional dependency (``pip install 'gtasr[web]'``) imported only
when the server starts.
"""
