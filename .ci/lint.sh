#!/usr/bin/env bash
# lint.sh checks formatting and runs the static analysers at pinned versions.
#
# govulncheck is not run: it needs the vulnerability database at
# https://vuln.go.dev, which this project's machines and CI cannot reach
# (`curl -sI https://vuln.go.dev` fails to resolve; only the Go module proxy
# is reachable). Once it is, add a pinned step:
#   go run golang.org/x/vuln/cmd/govulncheck@v1.9.0 ./...
set -euo pipefail

cd "$(dirname "$0")/.."

# staticcheck 2026.2.2; needs Go >= 1.26.
STATICCHECK_VERSION=v0.8.2

section() { printf '\n==> %s\n' "$*"; }

section "gofmt -l"
unformatted=$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -print0 |
	xargs -0 -r gofmt -l)
if [[ -n $unformatted ]]; then
	echo "these files are not gofmt'ed (run gofmt -w on them):" >&2
	sed 's/^/  /' <<<"$unformatted" >&2
	exit 1
fi
echo ok

section "go vet ./..."
go vet ./...
echo ok

section "staticcheck ($STATICCHECK_VERSION) ./..."
go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./...
echo ok
