"""`mlopsctl serve`: the deployment bundle behind FastAPI on uvicorn.

Imported only by the ``serve`` command. It reads a bundle (``artifacts/<name>/deploy/``) and
never plans, applies or writes anything in the repository.
"""
