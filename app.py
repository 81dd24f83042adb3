"""The page of ``gtasr serve`` for a Hugging Face Space (``sdk: gradio``).

Listens on all interfaces, as a Space's proxy needs: to try it on your own
machine run ``gtasr serve`` instead, which listens on 127.0.0.1 only.
"""

from gtasr.cli import main

raise SystemExit(main(["serve", "--host", "0.0.0.0"]))
