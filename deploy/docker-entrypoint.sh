#!/bin/sh
# Entrypoint of the UnMoGrowP image: reads the admin token from the file
# named by UNMOGROWP_ADMIN_TOKEN_FILE (a Compose secret) into
# UNMOGROWP_ADMIN_TOKEN, which every unmogrowp command and the load test
# read, then runs the command.
set -eu

if [ -n "${UNMOGROWP_ADMIN_TOKEN_FILE:-}" ]; then
    if [ ! -r "$UNMOGROWP_ADMIN_TOKEN_FILE" ]; then
        echo "docker-entrypoint: UNMOGROWP_ADMIN_TOKEN_FILE=$UNMOGROWP_ADMIN_TOKEN_FILE is missing or unreadable; create the secret (deploy/activate-monitoring.sh does) and restart" >&2
        exit 1
    fi
    UNMOGROWP_ADMIN_TOKEN="$(cat "$UNMOGROWP_ADMIN_TOKEN_FILE")"
    if [ -z "$UNMOGROWP_ADMIN_TOKEN" ]; then
        echo "docker-entrypoint: $UNMOGROWP_ADMIN_TOKEN_FILE is empty; write a random token into it and restart" >&2
        exit 1
    fi
    export UNMOGROWP_ADMIN_TOKEN
    unset UNMOGROWP_ADMIN_TOKEN_FILE
fi

exec "$@"
