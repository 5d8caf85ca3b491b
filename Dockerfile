# syntax=docker/dockerfile:1
#
# bilibridge container image.
#
#   docker build -t bilibridge --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm -it -v bilibridge-data:/data bilibridge login   # scan the QR code
#   docker run -d -v bilibridge-data:/data -p 127.0.0.1:8080:8080 bilibridge
#
# Without NATS_URL the binary embeds a NATS server (JetStream store under
# /data/nats); docker-compose.yml runs it against a separate NATS instead.

# ---- build ------------------------------------------------------------------
FROM golang:1.26 AS build
WORKDIR /src

# Dependencies first: this layer stays cached until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ARG VERSION=dev
# .git is excluded by .dockerignore, so there is no VCS stamp: the version
# comes from VERSION only.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/bilibridge ./cmd/bilibridge \
 && mkdir -p /out/rootfs/data

# ---- run --------------------------------------------------------------------
# distroless/static: no shell, no package manager, CA certificates and tzdata
# included (HTTPS to Bilibili, Telegram, Discord), runs as uid/gid 65532
# ("nonroot"). The binary is static (CGO_ENABLED=0), so nothing else is needed.
# The price: no shell or curl inside, so the health check is the binary itself
# (see below).
FROM gcr.io/distroless/static-debian12:nonroot

COPY --from=build /out/bilibridge /bilibridge
# /data must belong to the nonroot user: WORKDIR would create it owned by
# root, and a fresh named volume takes the ownership of the image's directory.
# Copying the tree that contains data/ (rather than data/ itself) makes
# --chown apply to the directory, not only to its (empty) contents.
COPY --from=build --chown=65532:65532 /out/rootfs/ /
WORKDIR /data

# Inside a container a listener must not be on loopback to be reachable
# through a published port. HTTP is (publish it on the host's 127.0.0.1
# only, -p 127.0.0.1:8080:8080, unless you mean to expose it). The embedded
# NATS stays on the container's loopback: whoever reaches it may read every
# DM and send as the account. `bilibridge tail` and `send` run inside the
# container (docker exec) still reach it. To expose it, set
# NATS_LISTEN=0.0.0.0:4222 together with NATS_USER and NATS_PASSWORD (the
# bridge refuses to start without them) and publish 4222; see docs/docker.md.
ENV DATA_DIR=/data \
    HTTP_ADDR=0.0.0.0:8080 \
    NATS_LISTEN=127.0.0.1:4222

# Credentials file (credentials.json) and, with the embedded NATS, the
# JetStream store (nats/).
VOLUME /data

# 8080: /healthz, /readyz, /metrics, /api/*. Not 4222: the embedded NATS is
# not reachable from outside unless configured so (see above).
EXPOSE 8080

USER 65532:65532

# `bilibridge health` GETs /healthz at HTTP_ADDR (0.0.0.0 is probed on
# 127.0.0.1) and exits 0 on 200: the process is alive and serving. It does
# not check /readyz (NATS connected, Bilibili login valid): an expired login
# is not cured by a restart, and /readyz says it to whoever probes it.
# --timeout is above the probe's own 5 s.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/bilibridge", "health"]

# SIGTERM (docker stop) makes bilibridge drain its NATS connection and stop
# the embedded server cleanly; give it time (docker stop -t 30,
# stop_grace_period: 30s in compose).
ENTRYPOINT ["/bilibridge"]
CMD ["run"]
