"""The baseline for `make bench`: a bare Flask app, served under the same gunicorn settings as a stage."""
from flask import Flask

app = Flask(__name__)


@app.get("/hello")
def hello():
    return {"hello": "world"}


@app.get("/healthz")
def healthz():  # what the launcher polls before the run starts
    return {"status": "ok"}
