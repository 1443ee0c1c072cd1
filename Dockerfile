# newsalert's image: one image for every role (`newsalert connectors`, `streams`, `run`), chosen
# by the command. Build from the repository root: docker build -t newsalert:0.1.0 .
# Both stages use the same base, so the virtualenv built in the first runs in the second.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for mypyc, which compiles the XML parse path (connectors/compiled.py), and a
# Rust toolchain (rustup, pinned) for the story index (streams/stories/native.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain 1.95.0
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY newsalert newsalert
COPY connectors connectors
COPY streams streams
COPY alerts alerts
# The pinned versions of constraints.txt, as `make` installs them; mypy (and so mypyc) only
# for the compile step, removed after it (the compiled modules need its runtime, librt).
RUN python -m venv /opt/newsalert \
    && /opt/newsalert/bin/pip install -c constraints.txt . mypy setuptools
# What the Makefile's COMPILED target does, here on the installed package: run from /tmp,
# `connectors` is the one in site-packages, so the compiled modules land beside its sources.
# The last line fails the build unless all four modules import compiled.
RUN cd /tmp \
    && /opt/newsalert/bin/python -m connectors.compiled \
    && SITE=$(/opt/newsalert/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
    && rm -rf "$SITE/build" "$SITE/.mypy_cache" \
    && /opt/newsalert/bin/pip uninstall -y mypy \
    && /opt/newsalert/bin/python -c "from connectors import compiled; \
missing = [m for m in compiled.MODULES if not compiled.is_compiled(m)]; \
assert not missing, f'not compiled: {missing}'; assert not compiled.stale_modules()"
# The story index, built from the sources in /src (the crate is not part of the package) and
# put beside the installed streams/stories; the last line fails the build unless it imports.
RUN cd /src \
    && CARGO_TARGET_DIR=/tmp/cargo-target /opt/newsalert/bin/python -m streams.stories.native \
    && SITE=$(/opt/newsalert/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
    && cp streams/stories/_storyindex.abi3.so "$SITE/streams/stories/" \
    && rm -rf /tmp/cargo-target \
    && cd /tmp && /opt/newsalert/bin/python -c "from streams.stories import native; \
assert native.available(), 'story index not built'"

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/newsalert --create-home \
    --shell /usr/sbin/nologin newsalert
COPY --from=build /opt/newsalert /opt/newsalert
ENV PATH=/opt/newsalert/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NEWSALERT_DATA_DIR=/var/lib/newsalert \
    NEWSALERT_METRICS_HOST=0.0.0.0 \
    NEWSALERT_METRICS_PORT=9464
USER 10001:10001
WORKDIR /var/lib/newsalert
EXPOSE 9464
# /healthz on the role's HTTP port: an error status or no answer is unhealthy (slim has no curl).
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('NEWSALERT_METRICS_PORT', '9464'), timeout=4)"
ENTRYPOINT ["newsalert"]
CMD ["run"]
