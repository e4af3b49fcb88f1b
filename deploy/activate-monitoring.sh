#!/usr/bin/env bash
# Start the UnMoGrowP platform and its monitoring stack with Docker Compose,
# then check every component and print where to find it.
#
#   deploy/activate-monitoring.sh [--loadtest] [--no-build] [--timeout SECONDS] [--secrets-only]
#
# It checks the prerequisites, then creates the secrets missing under
# deploy/secrets/: a random admin token and Grafana admin password, and an
# empty Slack webhook URL and SMTP password for you to fill in. It starts the
# stack and waits for each component's health endpoint. It checks that
# Grafana provisioned the four dashboards and that Prometheus scrapes every
# target, then prints the URLs. Running it again changes nothing that is
# already in place: existing secrets are kept and unchanged containers are
# left running.
#
# Without Docker, run the same Prometheus and Alertmanager configuration on
# Debian's packages: deploy/local/run-stack.sh.

set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COMPOSE_FILE="$DEPLOY_DIR/docker-compose.yml"
SECRETS_DIR="${UNMOGROWP_SECRETS_DIR:-$DEPLOY_DIR/secrets}"
HOST="127.0.0.1"
TIMEOUT=180
BUILD=1
LOADTEST=0
SECRETS_ONLY=0

DASHBOARD_UIDS=(unmogrowp-performance unmogrowp-customer-success unmogrowp-load-testing unmogrowp-customer-onboarding)

say() { printf '%s\n' "$*"; }
ok() { printf '  ok    %s\n' "$*"; }
warn() { printf '  WARN  %s\n' "$*" >&2; }
fail() {
    # fail WHAT FIX...: print what failed and what to do, then exit 1.
    local what="$1"
    shift
    printf '\nFAILED: %s\n' "$what" >&2
    for line in "$@"; do
        printf '  -> %s\n' "$line" >&2
    done
    exit 1
}

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

parse_arguments() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --loadtest) LOADTEST=1 ;;
            --no-build) BUILD=0 ;;
            --secrets-only) SECRETS_ONLY=1 ;;
            --timeout)
                [ $# -ge 2 ] || fail "--timeout needs a value" "pass the seconds to wait for each component, e.g. --timeout 300"
                TIMEOUT="$2"
                shift
                ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) fail "unknown option: $1" "run $0 --help for the options" ;;
        esac
        shift
    done
    case "$TIMEOUT" in
        '' | *[!0-9]*) fail "--timeout must be a whole number of seconds, got '$TIMEOUT'" "pass e.g. --timeout 300" ;;
    esac
}

# -- prerequisites -------------------------------------------------------------

check_prerequisites() {
    say "Checking prerequisites"
    if ! command -v docker >/dev/null 2>&1; then
        fail "docker is not installed (no 'docker' command on PATH)" \
            "install Docker Engine 24 or newer with the Compose plugin: https://docs.docker.com/engine/install/" \
            "or run Prometheus and Alertmanager without Docker: deploy/local/run-stack.sh"
    fi
    ok "docker: $(command -v docker)"

    local compose_version
    if ! compose_version="$(docker compose version --short 2>/dev/null)"; then
        fail "the Docker Compose plugin is missing ('docker compose version' failed)" \
            "install the docker-compose-plugin package (Compose v2.24 or newer): https://docs.docker.com/compose/install/linux/" \
            "the old docker-compose v1 command is not supported"
    fi
    ok "docker compose $compose_version"

    if ! docker info >/dev/null 2>&1; then
        fail "cannot reach the Docker daemon ('docker info' failed)" \
            "start it: sudo systemctl start docker" \
            "or let your user use it: sudo usermod -aG docker \"\$USER\", then log in again" \
            "or check DOCKER_HOST and the current docker context (docker context ls)"
    fi
    ok "Docker daemon reachable"

    command -v curl >/dev/null 2>&1 \
        || fail "curl is not installed" "install it (apt-get install curl) and rerun"
    ok "curl: $(command -v curl)"
}

# -- secrets -------------------------------------------------------------------

random_secret() {
    # 24 random bytes as 48 hexadecimal digits: 192 bits.
    od -An -vtx1 -N24 /dev/urandom | tr -d ' \n'
}

# ensure_secret NAME generate|empty DESCRIPTION
ensure_secret() {
    local name="$1" kind="$2" description="$3"
    local path="$SECRETS_DIR/$name"
    if [ -s "$path" ]; then
        ok "secret $name kept ($path)"
        return
    fi
    if [ -e "$path" ] && [ "$kind" = empty ]; then
        warn "secret $name is empty: $description"
        return
    fi
    # Mode 0644 lets the containers' own users read the bind-mounted file;
    # the folder's mode 0700 keeps other users of this host out.
    (
        umask 022
        if [ "$kind" = generate ]; then
            random_secret >"$path.tmp"
        else
            : >"$path.tmp"
        fi
        chmod 0644 "$path.tmp"
        mv "$path.tmp" "$path"
    )
    if [ "$kind" = generate ]; then
        ok "secret $name created with a random value ($path)"
    else
        warn "secret $name created empty: $description"
    fi
}

create_secrets() {
    say "Preparing secrets in $SECRETS_DIR"
    mkdir -p "$SECRETS_DIR"
    chmod 0700 "$SECRETS_DIR"
    ensure_secret admin_token generate "admin token of the ingestion service and the tracker"
    ensure_secret grafana_admin_password generate "password of Grafana's admin user"
    ensure_secret slack_webhook_url empty \
        "Slack notifications fail until you write the incoming-webhook URL into $SECRETS_DIR/slack_webhook_url and restart alertmanager"
    ensure_secret smtp_password empty \
        "e-mail notifications fail until you set the SMTP relay in deploy/alertmanager/alertmanager.yml and its password in $SECRETS_DIR/smtp_password"
}

# -- start and wait -------------------------------------------------------------

compose() {
    local profile_args=()
    if [ "$LOADTEST" = 1 ]; then
        profile_args=(--profile loadtest)
    fi
    docker compose --file "$COMPOSE_FILE" "${profile_args[@]}" "$@"
}

start_stack() {
    say "Starting the stack (docker compose up)"
    local build_args=()
    if [ "$BUILD" = 1 ]; then
        build_args=(--build)
    fi
    if ! compose up --detach --remove-orphans "${build_args[@]}"; then
        fail "docker compose up failed (its message is above)" \
            "a port already in use: stop what listens there (ss -ltnp) or set UNMOGROWP_BIND_ADDRESS" \
            "an image that cannot be pulled: check the network and the image versions in $COMPOSE_FILE" \
            "then rerun $0"
    fi
}

# wait_for NAME SERVICE URL: poll URL until it answers 2xx, at most TIMEOUT seconds.
wait_for() {
    local name="$1" service="$2" url="$3"
    local deadline=$((SECONDS + TIMEOUT))
    until curl --silent --fail --max-time 5 --output /dev/null "$url"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "$name did not become healthy within ${TIMEOUT}s ($url)" \
                "see its log: docker compose -f $COMPOSE_FILE logs --tail 100 $service" \
                "see its state: docker compose -f $COMPOSE_FILE ps $service" \
                "fix the cause, then rerun $0 (it keeps what already runs)"
        fi
        sleep 2
    done
    ok "$name is healthy ($url)"
}

wait_for_components() {
    say "Waiting for each component (up to ${TIMEOUT}s each)"
    wait_for "Ingestion service" ingestion "http://$HOST:8081/readyz"
    wait_for "Customer-success tracker" tracker "http://$HOST:8084/readyz"
    wait_for "Prometheus" prometheus "http://$HOST:9090/-/ready"
    wait_for "Alertmanager" alertmanager "http://$HOST:9093/-/ready"
    wait_for "Loki" loki "http://$HOST:3100/ready"
    wait_for "Grafana" grafana "http://$HOST:3000/api/health"
    wait_for "Jaeger" jaeger "http://$HOST:16686/"
    wait_for "Grafana Alloy" alloy "http://$HOST:12345/-/ready"
    wait_for "node-exporter" node-exporter "http://$HOST:9100/metrics"
    wait_for "cAdvisor" cadvisor "http://$HOST:8080/healthz"
    if [ "$LOADTEST" = 1 ]; then
        wait_for "Load-test exporter" locust-master "http://$HOST:9646/healthz"
    fi
}

# grafana_get PATH: GET from Grafana's API as admin. The password goes to curl
# on its standard input, never on a command line that ps would show.
grafana_get() {
    local password
    password="$(cat "$SECRETS_DIR/grafana_admin_password")"
    printf 'user = "admin:%s"\n' "$password" \
        | curl --silent --fail --max-time 10 --config - "http://$HOST:3000$1"
}

check_dashboards() {
    say "Checking Grafana provisioning"
    local deadline=$((SECONDS + TIMEOUT)) search="" missing=()
    while :; do
        missing=()
        search="$(grafana_get "/api/search?type=dash-db&tag=unmogrowp" || true)"
        for uid in "${DASHBOARD_UIDS[@]}"; do
            case "$search" in
                *"\"uid\":\"$uid\""*) ;;
                *) missing+=("$uid") ;;
            esac
        done
        [ ${#missing[@]} -eq 0 ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            if [ -z "$search" ]; then
                fail "Grafana's API refused the admin password or did not answer" \
                    "the password in $SECRETS_DIR/grafana_admin_password only applies when Grafana's database is created;" \
                    "if the grafana-data volume is older, reset it: docker compose -f $COMPOSE_FILE exec grafana grafana cli admin reset-admin-password \"\$(cat $SECRETS_DIR/grafana_admin_password)\""
            fi
            fail "Grafana has not provisioned these dashboards: ${missing[*]}" \
                "see the provisioning errors: docker compose -f $COMPOSE_FILE logs grafana | grep -i provision" \
                "check that $DEPLOY_DIR/grafana/dashboards/ holds the JSON files (python deploy/grafana/build_dashboards.py writes them)"
        fi
        sleep 3
    done
    ok "dashboards provisioned: ${DASHBOARD_UIDS[*]}"

    for uid in prometheus loki jaeger; do
        grafana_get "/api/datasources/uid/$uid" >/dev/null \
            || fail "Grafana has no data source with uid $uid" \
                "see: docker compose -f $COMPOSE_FILE logs grafana | grep -i datasource"
    done
    ok "data sources provisioned: Prometheus, Loki, Jaeger"
}

check_targets() {
    say "Checking Prometheus targets"
    # Targets need one scrape interval (15 s) after start to report their health.
    local deadline=$((SECONDS + 60)) targets down
    while :; do
        targets="$(curl --silent --fail --max-time 10 "http://$HOST:9090/api/v1/targets?state=active" || true)"
        # Each active target lists "scrapePool" before "health"; keep the pools
        # whose health is not "up", leaving out the load-test exporter, which
        # only runs during load campaigns.
        down="$(printf '%s' "$targets" | grep -o '"scrapePool":"[^"]*"\|"health":"[^"]*"' \
            | paste - - | grep -v '"health":"up"' | grep -o '"scrapePool":"[^"]*"' | cut -d'"' -f4 \
            | grep -vx 'loadtest-exporter' | sort -u | tr '\n' ' ' || true)"
        [ -n "$targets" ] && [ -z "$down" ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            warn "Prometheus cannot scrape: ${down:-every target (no answer from its API)}"
            warn "see http://$HOST:9090/targets for the error of each"
            return
        fi
        sleep 5
    done
    ok "every target is up"
}

print_summary() {
    cat <<EOF

UnMoGrowP monitoring stack is running.

  Grafana          http://$HOST:3000   user admin, password in $SECRETS_DIR/grafana_admin_password
  Prometheus       http://$HOST:9090
  Alertmanager     http://$HOST:9093
  Jaeger           http://$HOST:16686
  Loki             http://$HOST:3100   (query it from Grafana's Explore)
  Ingestion        http://$HOST:8081   admin token in $SECRETS_DIR/admin_token
  Tracker          http://$HOST:8084
EOF
    if [ "$LOADTEST" = 1 ]; then
        say "  Locust           http://$HOST:8089   (exporter http://$HOST:9646/metrics)"
    fi
    cat <<EOF

Dashboards (Grafana, folder UnMoGrowP): Performance Monitoring, Customer Success
Metrics, Load Testing Validation, Customer Onboarding. What each answers, and
what to do when an alert fires: docs/operations.md and docs/runbooks.md.
Stop: docker compose -f $COMPOSE_FILE down   (data stays in named volumes)
EOF
}

on_error() {
    fail "command failed at line $1 of $0: $2" \
        "this is unexpected; rerun with 'bash -x $0' to see each step, and report the output"
}

main() {
    trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR
    parse_arguments "$@"
    say "UnMoGrowP monitoring stack activation"
    if [ "$SECRETS_ONLY" = 1 ]; then
        create_secrets
        return
    fi
    check_prerequisites
    create_secrets
    start_stack
    wait_for_components
    check_dashboards
    check_targets
    print_summary
}

main "$@"
