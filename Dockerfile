# One image for every tollgate service; the compose file picks the module to run.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml ./
RUN pip install --quiet setuptools && mkdir -p services gen/python && pip install --quiet -e . && \
    python -c 'import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()["purelib"], "tollgate-paths.pth").write_text("/app/services\n/app/gen/python\n")'
COPY gen ./gen
COPY services ./services
COPY deploy ./deploy
USER nobody
