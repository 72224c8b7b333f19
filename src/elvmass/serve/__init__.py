"""The deployed model: an HTTP service with a web page (:mod:`elvmass.serve.app`), served by uvicorn.

    $ elvmass serve --model MODEL_DIR --port 8000          # then open http://127.0.0.1:8000/

    >>> from elvmass.serve import create_app               # doctest: +SKIP
    >>> app = create_app("model/")                          # doctest: +SKIP
"""

from elvmass.serve.app import ServiceConfig, create_app

__all__ = ["ServiceConfig", "create_app"]
