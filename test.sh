#!/usr/bin/env bash
# test.sh runs every test of sessionhub. It is the one test command: README
# names it and .ci/run calls it.
#
#   1. Chromium for the browser tests: installed from Debian's packages when
#      absent, its path exported as CHROMIUM_PATH.
#   2. Debian's python3-flask, python3-quart, python3-hypercorn and
#      python3-websockets for the Flask/Quart tests (/usr/bin/python3):
#      installed when absent.
#   3. go build ./...
#   4. go test -race ./...
#   5. .ci/loadtest-smoke, when present: a short loadtest against
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

# --- 2. Flask and Quart ---------------------------------------------------
section "Flask and Quart"
python_pkgs="python3-flask python3-quart python3-hypercorn python3-websockets"
if ! /usr/bin/python3 -c "import flask, quart, hypercorn, websockets" >/dev/null 2>&1; then
	echo "Flask or Quart not found; installing $python_pkgs from Debian's packages"
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		sudo=(sudo)
	fi
	"${sudo[@]}" apt-get update </dev/null
	# shellcheck disable=SC2086 # one word a package
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -o DPkg::Lock::Timeout=300 $python_pkgs </dev/null
	/usr/bin/python3 -c "import flask, quart, hypercorn, websockets" || {
		echo "test.sh: Flask or Quart still cannot be imported after installing them" >&2
		exit 1
	}
fi
/usr/bin/python3 -c "import flask, quart; print('flask', flask.__version__, 'quart', getattr(quart, '__version__', '0.18'))" 2>/dev/null || true

# --- 3. Build ------------------------------------------------------------
section "go build ./..."
go build ./...

# --- 4. Tests ------------------------------------------------------------
section "go test -race -count=1 -timeout 45m ./..."
go test -race -count=1 -timeout 45m ./...

# --- 5. Loadtest smoke ---------------------------------------------------
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
