#!/usr/bin/env bash
# test.sh runs every test of sessionhub. It is the one test command: README
# names it and .ci/run calls it.
#
#   1. Chromium for the browser tests: installed from Debian's packages when
#      absent, its path exported as CHROMIUM_PATH.
#   2. go build ./...
#   3. go test -race ./...
#   4. .ci/loadtest-smoke, when present: a short loadtest against
#      local servers.
#
# It needs Go and a Debian (or Debian-based) machine; it runs unattended
# (no stdin, CI=true) as root, or through sudo otherwise.
set -euo pipefail

cd "$(dirname "$0")"

started=$SECONDS
section_start=
section() {
	if [[ -n $section_start ]]; then
		printf '    (took %ds)\n' "$((SECONDS - section_start))"
	fi
	section_start=$SECONDS
	printf '\n==> %s\n' "$*"
}

section "Toolchain"
go version

# --- 1. Chromium ---------------------------------------------------------
section "Chromium"
find_chromium() {
	if [[ -n ${CHROMIUM_PATH:-} && -x ${CHROMIUM_PATH} ]]; then
		printf '%s\n' "$CHROMIUM_PATH"
		return 0
	fi
	local c
	for c in chromium /usr/bin/chromium; do
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return 0
		fi
	done
	return 1
}

if ! chromium_path=$(find_chromium); then
	echo "chromium not found; installing it from Debian's packages"
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		sudo=(sudo)
	fi
	"${sudo[@]}" apt-get update </dev/null
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -o DPkg::Lock::Timeout=300 chromium </dev/null
	chromium_path=$(find_chromium) || {
		echo "test.sh: chromium is still not on PATH after installing it" >&2
		exit 1
	}
fi
export CHROMIUM_PATH=$chromium_path
echo "CHROMIUM_PATH=$CHROMIUM_PATH"
"$CHROMIUM_PATH" --version 2>/dev/null || true

# --- 2. Build ------------------------------------------------------------
section "go build ./..."
go build ./...

# --- 3. Tests ------------------------------------------------------------
section "go test -race -count=1 -timeout 45m ./..."
go test -race -count=1 -timeout 45m ./...

# --- 4. Loadtest smoke ---------------------------------------------------
smoke=.ci/loadtest-smoke
if [[ -e $smoke ]]; then
	section "Loadtest smoke ($smoke)"
	if [[ ! -x $smoke ]]; then
		echo "test.sh: $smoke exists but is not executable (chmod +x it)" >&2
		exit 1
	fi
	"./$smoke"
fi

section "Done"
printf 'test.sh: ok in %ds\n' "$((SECONDS - started))"
