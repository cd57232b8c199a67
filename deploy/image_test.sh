#!/usr/bin/env bash
# `deno task test:image`: builds the Dockerfile for real with podman and runs the image's command
# the way a container runtime would, as far as this machine allows.
#
# No Docker engine runs here, containers cannot start (the sandbox refuses crun's setrlimit) and
# the denoland/deno base image cannot be pulled. So this script:
#   1. makes a stand-in for docker.io/denoland/deno:<version>: Debian bookworm (debootstrap
#      minbase), Deno from the npm registry at /usr/bin/deno, a `deno` user with uid 1000,
#      DENO_DIR=/deno-dir/, tini and an entry point that behave like the official image's, and
#      this machine's CA bundle with DENO_CERT pointing at it (registry traffic may need it);
#   2. builds the project's Dockerfile on it with `podman build --isolation chroot`;
#   3. mounts the built image read-only (`podman image mount`) and runs its ENTRYPOINT + CMD in
#      it with `chroot --userspec`, with the image's ENV, WORKDIR and USER, in a network namespace
#      that has only loopback, a PID namespace and a private mount namespace. A fresh folder is
#      bound on /data as the volume; the rest of the file system stays read-only;
#   4. serves the page, an upload over gRPC and the result download from it, on loopback inside
#      that namespace, then stops it with SIGTERM as `docker stop` does.
#
# Runs as root. Installs podman, debootstrap and the other tools with apt-get when missing. The
# base file system is cached in .cache/image/ and podman keeps its layers, so later runs only
# rebuild what changed. Safe to run again; mounts, namespaces and processes are cleaned on exit.
set -euo pipefail

DENO_VERSION=2.9.3
BASE_TAG="docker.io/denoland/deno:${DENO_VERSION}"
APP_TAG="localhost/sales-aggregator:image-test"
# Bump when the stand-in recipe below changes, so cached bases are rebuilt.
RECIPE_VERSION=1
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SERVER_START_TIMEOUT_SEC=60
SERVER_STOP_TIMEOUT_SEC=20

export DEBIAN_FRONTEND=noninteractive
export DENO_NO_UPDATE_CHECK=1
export NO_COLOR=1

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${repo_root}/.cache/image"

passed=0
failed=0
pass() {
  printf 'PASS: %s\n' "$*"
  passed=$((passed + 1))
}
fail() {
  printf 'FAIL: %s\n' "$*"
  failed=$((failed + 1))
}
step() { printf '\n==> %s\n' "$*"; }
# A failure that makes the remaining checks meaningless.
die() {
  fail "$*"
  exit 1
}
elapsed() { printf '%ds' "$((SECONDS - $1))"; }

# ---------------------------------------------------------------------------------------------
# Clean-up: everything this run mounted, started or created, and nothing else.

work_dir=""
netns=""
server_pid=""
init_pid=""
image_mounted=""
cleanup() {
  local status=$?
  trap - ERR
  set +e
  # The namespace's PID 1 first: when it dies the kernel kills every process in the namespace.
  # (unshare --kill-child alone is not enough: chroot --userspec changes credentials, which
  # clears the parent-death signal.)
  [[ -n "${init_pid}" ]] && kill -KILL "${init_pid}" 2>/dev/null
  if [[ -n "${server_pid}" ]] && kill -0 "${server_pid}" 2>/dev/null; then
    kill -KILL "${server_pid}" 2>/dev/null
    wait "${server_pid}" 2>/dev/null
  fi
  [[ -n "${netns}" ]] && ip netns delete "${netns}" 2>/dev/null
  [[ -n "${image_mounted}" ]] && podman image unmount "${image_mounted}" >/dev/null 2>&1
  [[ -n "${work_dir}" ]] && rm -rf "${work_dir}"
  [[ ${status} -ne 0 && ${failed} -eq 0 ]] && fail "stopped with status ${status} before the end"
  printf '\nimage test: %d passed, %d failed\n' "${passed}" "${failed}"
  if [[ ${status} -eq 0 && ${failed} -gt 0 ]]; then status=1; fi
  exit "${status}"
}
trap cleanup EXIT
# A command that fails outside a check stops the run; say where, so it never passes silently.
trap 'fail "unexpected error (status $?) at line ${LINENO}: ${BASH_COMMAND}"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
step "Prerequisites"

[[ "$(id -u)" -eq 0 ]] || die "must run as root (podman build, chroot, mounts and namespaces)"
npm_prefix="$(npm prefix -g 2>/dev/null || echo /usr/local)"
export PATH="${npm_prefix}/bin:${PATH}"
command -v npm >/dev/null || die "npm is needed to fetch Deno ${DENO_VERSION} for the base image"
command -v deno >/dev/null || die "deno is needed on the host (the upload client)"

missing=()
for tool in podman:podman debootstrap:debootstrap ip:iproute2 curl:curl unshare:util-linux \
  chroot:coreutils; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "installing with apt-get: ${missing[*]}"
  apt_log="$(mktemp)"
  if ! { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"; } \
    </dev/null >"${apt_log}" 2>&1; then
    tail -n 30 "${apt_log}"
    rm -f "${apt_log}"
    die "apt-get install ${missing[*]} failed"
  fi
  rm -f "${apt_log}"
fi
podman --version

mkdir -p "${cache_dir}"
# One run at a time: the cached base and the image tags are shared. (The service is started
# with this descriptor closed, so it can never hold the lock.)
exec 9>"${cache_dir}/.lock"
flock -w 1800 9 || die "another image test holds ${cache_dir}/.lock"

# A run killed with SIGKILL cannot clean up: remove its namespace and what still runs in it.
for stale in $(ip netns list 2>/dev/null | awk '/^sales-image-test-[0-9]+/ { print $1 }'); do
  if ! kill -0 "${stale##*-}" 2>/dev/null; then
    echo "removing ${stale}, left by a run that did not finish"
    ip netns pids "${stale}" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns delete "${stale}" 2>/dev/null || true
  fi
done

work_dir="$(mktemp -d /tmp/sales-image-test.XXXXXX)"

# The CA bundle this machine trusts. Registry traffic from the build may pass through a proxy
# whose CA only this bundle holds; DENO_CERT adds it to Deno's own roots.
ca_bundle=""
for candidate in "${DENO_CERT:-}" "${NODE_EXTRA_CA_CERTS:-}" "${SSL_CERT_FILE:-}" \
  "$(npm config get cafile 2>/dev/null || true)" /etc/ssl/certs/ca-certificates.crt; do
  if [[ -n "${candidate}" && "${candidate}" != "null" && -s "${candidate}" ]]; then
    ca_bundle="${candidate}"
    break
  fi
done
[[ -n "${ca_bundle}" ]] || die "no CA bundle found (DENO_CERT, NODE_EXTRA_CA_CERTS, SSL_CERT_FILE)"
echo "CA bundle: ${ca_bundle}"

# ---------------------------------------------------------------------------------------------
step "Stand-in base image ${BASE_TAG}"
t0=${SECONDS}

base_key="$({
  echo "recipe ${RECIPE_VERSION} deno ${DENO_VERSION} ${DEBIAN_SUITE}"
  sha256sum <"${ca_bundle}"
} | sha256sum | cut -c1-16)"
base_tar="${cache_dir}/deno-${DENO_VERSION}-${DEBIAN_SUITE}-${base_key}.tar"
label_key="org.sales-aggregator.stand-in"

current_key="$(podman image inspect --format "{{index .Labels \"${label_key}\"}}" "${BASE_TAG}" \
  2>/dev/null || true)"
if [[ "${current_key}" == "${base_key}" ]]; then
  echo "up to date (${label_key}=${base_key})"
else
  if [[ ! -s "${base_tar}" ]]; then
    rootfs="${cache_dir}/rootfs.tmp"
    # A run killed half-way may have left debootstrap's mounts behind.
    if [[ -d "${rootfs}" ]]; then
      findmnt -rn -o TARGET | grep -F "${rootfs}/" | sort -r | xargs -r -n 1 umount -l || true
      rm -rf "${rootfs}"
    fi
    echo "debootstrap --variant=minbase ${DEBIAN_SUITE} (about a minute)"
    if ! debootstrap --variant=minbase --include=tini "${DEBIAN_SUITE}" "${rootfs}" \
      "${DEBIAN_MIRROR}" >"${work_dir}/debootstrap.log" 2>&1; then
      tail -n 30 "${work_dir}/debootstrap.log"
      die "debootstrap ${DEBIAN_SUITE} from ${DEBIAN_MIRROR} failed"
    fi
    # debootstrap may leave /proc mounted in the new tree.
    findmnt -rn -o TARGET | grep -F "${rootfs}/" | sort -r | xargs -r -n 1 umount -l || true

    # Deno from the npm registry: the platform package holds the release binary, and npm checks
    # it against the registry's integrity hash.
    deno_tgz="${cache_dir}/deno-linux-x64-glibc-${DENO_VERSION}.tgz"
    if [[ ! -s "${deno_tgz}" ]]; then
      (cd "${work_dir}" && npm pack --silent "@deno/linux-x64-glibc@${DENO_VERSION}" >/dev/null) ||
        die "npm pack @deno/linux-x64-glibc@${DENO_VERSION} failed"
      mv "${work_dir}/deno-linux-x64-glibc-${DENO_VERSION}.tgz" "${deno_tgz}"
    fi
    tar -xzf "${deno_tgz}" -O package/deno >"${rootfs}/usr/bin/deno"
    chmod 0755 "${rootfs}/usr/bin/deno"

    # As in the official image: a deno user (uid 1000) owning DENO_DIR, tini at /tini and an
    # entry point that runs `deno <subcommand>` for a bare subcommand and anything else as is.
    chroot "${rootfs}" useradd --uid 1000 --user-group deno
    mkdir -p "${rootfs}/deno-dir"
    chown 1000:1000 "${rootfs}/deno-dir"
    ln -s /usr/bin/tini "${rootfs}/tini"
    cat >"${rootfs}/usr/local/bin/docker-entrypoint.sh" <<'ENTRY'
#!/bin/sh
set -e
case "$1" in
  bench | bundle | cache | check | compile | completions | coverage | doc | eval | fmt | help | \
    info | init | install | jupyter | lint | lsp | publish | repl | run | serve | task | test | \
    types | uninstall | upgrade | vendor)
    exec deno "$@" ;;
esac
exec "$@"
ENTRY
    chmod 0755 "${rootfs}/usr/local/bin/docker-entrypoint.sh"

    mkdir -p "${rootfs}/etc/ssl/certs"
    cp "${ca_bundle}" "${rootfs}/etc/ssl/certs/ca-certificates.crt"
    chmod 0644 "${rootfs}/etc/ssl/certs/ca-certificates.crt"
    # What a container runtime would provide; the build bind-mounts the host's own over them.
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
      >"${rootfs}/etc/hosts"
    : >"${rootfs}/etc/resolv.conf"
    echo "sales-image-test" >"${rootfs}/etc/hostname"
    rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/lists/* \
      "${rootfs}"/var/log/* "${rootfs}"/tmp/* "${rootfs}"/proc/* "${rootfs}"/sys/*

    version="$(chroot "${rootfs}" /usr/bin/deno --version | head -n 1)"
    [[ "${version}" == "deno ${DENO_VERSION} "* ]] || die "the base's deno prints ${version}"
    tar -C "${rootfs}" --numeric-owner --xattrs -cf "${base_tar}.tmp" .
    mv "${base_tar}.tmp" "${base_tar}"
    rm -rf "${rootfs}"
    # Older bases of this recipe are stale now.
    find "${cache_dir}" -maxdepth 1 -name "deno-*.tar" ! -name "$(basename "${base_tar}")" -delete
  fi
  podman import --quiet \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV DENO_DIR=/deno-dir/" \
    --change "ENV DENO_INSTALL_ROOT=/usr/local" \
    --change "ENV DENO_VERSION=${DENO_VERSION}" \
    --change "ENV DENO_CERT=/etc/ssl/certs/ca-certificates.crt" \
    --change 'ENTRYPOINT ["/tini", "--", "docker-entrypoint.sh"]' \
    --change "CMD [\"eval\", \"console.log('Welcome to Deno!')\"]" \
    --change "LABEL ${label_key}=${base_key}" \
    "${base_tar}" "${BASE_TAG}" >/dev/null || die "podman import ${base_tar} failed"
fi
pass "stand-in ${BASE_TAG} ready ($(elapsed "${t0}"))"

# ---------------------------------------------------------------------------------------------
step "podman build --isolation chroot"
t0=${SECONDS}
# --format docker keeps the HEALTHCHECK in the image config (OCI has no field for it).
if podman build --isolation chroot --pull=never --format docker --layers \
  -t "${APP_TAG}" -f "${repo_root}/Dockerfile" "${repo_root}" >"${work_dir}/build.log" 2>&1; then
  steps="$(grep -cE '^STEP [0-9]+/' "${work_dir}/build.log" || true)"
  cached="$(grep -c '^--> Using cache' "${work_dir}/build.log" || true)"
  pass "the Dockerfile builds on ${BASE_TAG} ($(elapsed "${t0}"), ${cached} of ${steps} steps cached)"
else
  tail -n 40 "${work_dir}/build.log"
  die "podman build failed (log above)"
fi
# Each build whose sources changed leaves its layers behind. Keep the ones this build used (the
# next build starts from them) and remove the others built on the stand-in, found by its label.
keep=" "
layer="$(podman image inspect --format '{{.Id}}' "${APP_TAG}")"
while [[ -n "${layer}" ]]; do
  keep+="${layer} "
  layer="$(podman image inspect --format '{{.Parent}}' "${layer}" 2>/dev/null || true)"
done
for _ in 1 2 3; do
  stale=()
  while read -r id tags; do
    id="${id#sha256:}"
    [[ "${keep}" == *" ${id} "* || "${tags}" != "[]" ]] || stale+=("${id}")
  done < <(podman images --all --no-trunc --filter "label=${label_key}" \
    --format '{{.ID}} {{.Names}}' 2>/dev/null || true)
  [[ ${#stale[@]} -gt 0 ]] || break
  # Children first would be ideal; a parent that still has one simply waits for the next pass.
  podman rmi "${stale[@]}" >/dev/null 2>&1 || true
done

# ---------------------------------------------------------------------------------------------
step "The image's configuration"

read_list() { # <array name> <go template field>: one item per element, values kept exact
  local -n list=$1
  list=()
  local item
  # NUL-separated, so values may hold spaces or quotes; podman ends the output with a newline.
  while IFS= read -r -d '' item; do list+=("${item}"); done < <(
    podman image inspect --format "{{range ${2}}}{{printf \"%s\\x00\" .}}{{end}}" \
      "${APP_TAG}" 2>/dev/null
  )
}
image_env=() image_entrypoint=() image_cmd=() image_healthcheck=()
read_list image_env .Config.Env
read_list image_entrypoint .Config.Entrypoint
read_list image_cmd .Config.Cmd
read_list image_healthcheck .Config.Healthcheck.Test
image_workdir="$(podman image inspect --format '{{.Config.WorkingDir}}' "${APP_TAG}")"
image_user="$(podman image inspect --format '{{.Config.User}}' "${APP_TAG}")"
printf 'ENV        %s\n' "${image_env[@]}"
echo "WORKDIR    ${image_workdir}"
echo "USER       ${image_user}"
echo "ENTRYPOINT ${image_entrypoint[*]}"
echo "CMD        ${image_cmd[*]}"

env_value() { # <name> <default>
  local entry
  for entry in "${image_env[@]}"; do
    if [[ "${entry%%=*}" == "$1" ]]; then
      printf '%s' "${entry#*=}"
      return
    fi
  done
  printf '%s' "$2"
}
grpc_port="$(env_value GRPC_PORT 50051)"
http_port="$(env_value HTTP_PORT 8080)"
web_port="$(env_value WEB_PORT 3000)"
storage_dir="$(env_value STORAGE_DIR ./storage)"
if [[ "${storage_dir}" == "/data" ]]; then
  pass "STORAGE_DIR is /data"
else
  fail "STORAGE_DIR is ${storage_dir}, not /data"
fi
exposed=" $(podman image inspect --format '{{range $port, $_ := .Config.ExposedPorts}}{{$port}} {{end}}' \
  "${APP_TAG}") "
for port in "${grpc_port}" "${http_port}" "${web_port}"; do
  if [[ "${exposed}" == *" ${port}/tcp "* ]]; then
    pass "port ${port} is EXPOSEd"
  else
    fail "port ${port} is not EXPOSEd (EXPOSE:${exposed})"
  fi
done
if [[ " ${image_cmd[*]} " == *" --cached-only "* ]]; then
  pass "the CMD runs with --cached-only"
else
  fail "the CMD lacks --cached-only: a missing module would be downloaded at start"
fi

root="$(podman image mount "${APP_TAG}")" || die "podman image mount ${APP_TAG} failed"
image_mounted="${APP_TAG}"
if [[ "$(findmnt -no OPTIONS --mountpoint "${root}")" == ro,* ]]; then
  pass "the image is mounted read-only: the run below can write only to its /data volume"
else
  die "podman image mount gave a writable mount at ${root}"
fi

# USER as the image's own /etc/passwd resolves it, as the runtime does.
user_name="${image_user%%:*}"
if [[ "${user_name}" =~ ^[0-9]+$ ]]; then
  uid="${user_name}"
  gid="$(awk -F: -v u="${uid}" '$3 == u { print $4; exit }' "${root}/etc/passwd")"
else
  uid="$(awk -F: -v n="${user_name}" '$1 == n { print $3; exit }' "${root}/etc/passwd")"
  gid="$(awk -F: -v n="${user_name}" '$1 == n { print $4; exit }' "${root}/etc/passwd")"
fi
home="$(awk -F: -v u="${uid}" '$3 == u { print $6; exit }' "${root}/etc/passwd")"
if [[ "${image_user}" == *:* ]]; then gid="${image_user#*:}"; fi
if [[ "${uid}" == "1000" && "${gid}" == "1000" ]]; then
  pass "USER ${image_user} is uid 1000, gid 1000, not root"
else
  die "USER ${image_user:-<unset, root>} resolves to uid ${uid:-?} gid ${gid:-?}, not 1000:1000"
fi

# The code may be read by the service user but not changed: nothing under the WORKDIR is owned by
# it or writable by group or others.
writable="$(find "${root}${image_workdir}" ! -type l \( -uid "${uid}" -o -gid "${gid}" -o -perm /022 \) \
  -printf '%M %U:%G %P\n' | head -n 5 || true)"
if [[ -z "${writable}" ]]; then
  pass "nothing in ${image_workdir} is owned by uid ${uid} or writable by group or others"
else
  fail "${image_workdir} has files uid ${uid} may change:"$'\n'"${writable}"
fi
data_owner="$(stat -c '%u:%g' "${root}/data")"
if [[ "${data_owner}" == "${uid}:${gid}" ]]; then
  pass "/data belongs to ${uid}:${gid}"
else
  fail "/data belongs to ${data_owner}, not ${uid}:${gid}"
fi

# ---------------------------------------------------------------------------------------------
step "Run the image's command: chroot --userspec=${uid}:${gid}, loopback only, read-only but /data"

# The volume: a fresh folder with the image's /data content and ownership, as a new named volume.
volume="${work_dir}/volume"
mkdir -p "${volume}"
cp -a "${root}/data/." "${volume}/"
chown "${uid}:${gid}" "${volume}"
chmod "$(stat -c '%a' "${root}/data")" "${volume}"

netns="sales-image-test-$$"
ip netns add "${netns}"
ip -n "${netns}" link set lo up
in_netns() { ip netns exec "${netns}" "$@"; }

# No way out of the namespace: the service cannot download anything, whatever it tried.
links="$(ip -n "${netns}" -o link show | awk -F': ' '{ printf "%s ", $2 }')"
if [[ "${links}" != "lo " ]]; then
  fail "the namespace has interfaces other than loopback: ${links}"
elif in_netns curl -sS --max-time 5 -o /dev/null https://registry.npmjs.org/ 2>/dev/null; then
  fail "the namespace reaches registry.npmjs.org: the run would not prove the image is offline"
else
  pass "the namespace has loopback only: the npm registry is out of reach"
fi

# Inside: a private mount namespace over the read-only image, with /proc, a minimal /dev and the
# volume on /data; then the image's ENTRYPOINT + CMD as its user, in its WORKDIR, with its ENV
# only. tini is PID 1, as in a container.
# shellcheck disable=SC2016
inner='
set -eu
root=$1 volume=$2 uid=$3 gid=$4 workdir=$5
shift 5
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o nosuid,mode=0755 dev "$root/dev"
for node in null zero full random urandom tty; do
  touch "$root/dev/$node"
  mount --bind "/dev/$node" "$root/dev/$node"
done
mkdir "$root/dev/shm"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount --bind "$volume" "$root/data"
exec chroot --userspec="$uid:$gid" "$root" /usr/bin/env -i -C "$workdir" "$@"
'
run_env=("${image_env[@]}" "HOSTNAME=sales-image-test")
[[ " ${image_env[*]} " == *" HOME="* ]] || run_env+=("HOME=${home:-/}")
server_log="${work_dir}/server.log"
# Started directly (not through in_netns), so $! is the unshare process itself.
ip netns exec "${netns}" unshare --mount --propagation private --pid --fork --kill-child \
  bash -c "${inner}" inner "${root}" "${volume}" "${uid}" "${gid}" "${image_workdir:-/}" \
  "${run_env[@]}" "${image_entrypoint[@]}" "${image_cmd[@]}" >"${server_log}" 2>&1 9>&- &
server_pid=$!

t0=${SECONDS}
ready=""
while ((SECONDS - t0 < SERVER_START_TIMEOUT_SEC)); do
  if ! kill -0 "${server_pid}" 2>/dev/null; then break; fi
  [[ -n "${init_pid}" ]] ||
    init_pid="$(awk '{ print $1 }' "/proc/${server_pid}/task/${server_pid}/children" 2>/dev/null)"
  if in_netns curl -s -o /dev/null --max-time 2 "http://127.0.0.1:${web_port}/" &&
    grep -q "Listening on .*:${grpc_port}" "${server_log}"; then
    ready=1
    break
  fi
  sleep 0.2
done
echo "--- service output"
cat "${server_log}"
echo "---"
if [[ -z "${ready}" ]]; then
  if kill -0 "${server_pid}" 2>/dev/null; then
    die "the service did not start within ${SERVER_START_TIMEOUT_SEC} s"
  fi
  wait "${server_pid}" && code=0 || code=$?
  server_pid=""
  init_pid=""
  die "the service exited with status ${code} before listening (output above)"
fi
pass "the service starts offline from the image's cache in $(elapsed "${t0}")"
if grep -qiE '^(Download|Downloading) ' "${server_log}"; then
  fail "the service printed downloads at start"
else
  pass "nothing was downloaded at start"
fi

# Who runs it: every process in the namespace but our own unshare wrapper.
bad_procs=""
found_deno=""
for pid in $(ip netns pids "${netns}"); do
  [[ "${pid}" == "${server_pid}" ]] && continue
  comm="$(cat "/proc/${pid}/comm" 2>/dev/null)" || continue
  uids="$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/${pid}/status")"
  [[ "${comm}" == "deno" ]] && found_deno=1
  [[ "${uids}" == "${uid} ${uid} ${uid} ${uid}" ]] || bad_procs+="${pid} ${comm} uids ${uids}; "
done
if [[ -n "${found_deno}" && -z "${bad_procs}" ]]; then
  pass "deno and tini run as uid ${uid} (real, effective, saved and file system uid)"
else
  fail "processes not running as uid ${uid}: ${bad_procs:-no deno process found}"
fi

# ---------------------------------------------------------------------------------------------
step "Serve a page, an upload and a download from it"

page="${work_dir}/page.html"
status="$(in_netns curl -s -o "${page}" -w '%{http_code}' "http://127.0.0.1:${web_port}/")"
if [[ "${status}" == "200" ]] && grep -qi '<html' "${page}"; then
  pass "GET / on the web port answers 200 with the page ($(wc -c <"${page}") bytes)"
else
  fail "GET / on the web port answers ${status}"
fi
# The island bundle was built into the image, not at start.
asset="$(grep -oE '(src|href)="/[^"]+\.js"' "${page}" | head -n 1 |
  sed -E 's/^[a-z]+="//; s/"$//' || true)"
if [[ -n "${asset}" ]]; then
  status="$(in_netns curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${web_port}${asset}")"
  if [[ "${status}" == "200" ]]; then
    pass "GET ${asset} (the page's script) answers 200"
  else
    fail "GET ${asset} (the page's script) answers ${status}"
  fi
else
  fail "the page references no script"
fi

sample="${repo_root}/testdata/sample.csv"
expected="${work_dir}/expected.csv"
(cd "${repo_root}" && deno task -q aggregate "${sample}" --out "${expected}" >/dev/null) ||
  die "deno task aggregate ${sample} failed on the host"
# The clients' own modules come from the host's cache: fetch them while the host is online.
(cd "${repo_root}" && deno cache -q server/cli/upload.ts deploy/_grpc_web_upload.ts) ||
  die "deno cache of the upload clients failed"
upload_out="${work_dir}/upload.json"
if (cd "${repo_root}" && in_netns deno task -q upload "${sample}" \
  --addr "127.0.0.1:${grpc_port}" >"${upload_out}" 2>"${work_dir}/upload.err"); then
  pass "deno task upload over gRPC to the image's port ${grpc_port} succeeds"
else
  cat "${work_dir}/upload.err" "${upload_out}"
  fail "deno task upload over gRPC to the image's port ${grpc_port} failed"
fi
result_id="$(grep -oE '"result_id":"[^"]+"' "${upload_out}" | head -n 1 | cut -d'"' -f4 || true)"
echo "upload: $(head -c 300 "${upload_out}")"

# The page's protocol: UploadCSV over gRPC-Web on the web port.
web_result_id=""
if web_result_id="$(cd "${repo_root}" && in_netns deno run -q --cached-only --allow-read \
  --allow-net deploy/_grpc_web_upload.ts "http://127.0.0.1:${web_port}" "${sample}" \
  2>"${work_dir}/web_upload.err")" && [[ -n "${web_result_id}" ]]; then
  pass "UploadCSV over gRPC-Web to the image's web port ${web_port} succeeds"
else
  cat "${work_dir}/web_upload.err"
  fail "UploadCSV over gRPC-Web to the image's web port ${web_port} failed"
fi

for id in "${result_id}" "${web_result_id}"; do
  [[ -n "${id}" ]] || continue
  downloaded="${work_dir}/${id}.csv"
  status="$(in_netns curl -s -o "${downloaded}" -w '%{http_code}' \
    "http://127.0.0.1:${http_port}/results/${id}.csv")"
  if [[ "${status}" == "200" ]] && cmp -s "${downloaded}" "${expected}"; then
    pass "GET /results/${id}.csv on the result port is byte-identical to deno task aggregate"
  else
    fail "GET /results/${id}.csv answers ${status}; differs from deno task aggregate"
  fi
  stored="$(find "${volume}" -type f -name "*${id}*" -printf '%U:%G %P\n' | head -n 1 || true)"
  if [[ "${stored}" == "${uid}:${gid} "* ]]; then
    pass "the result is stored in /data by uid ${uid}: ${stored#* }"
  else
    fail "no result file of uid ${uid} in /data (found: ${stored:-nothing})"
  fi
done
[[ -n "${result_id}" ]] || fail "the gRPC upload printed no result_id"

if [[ ${#image_healthcheck[@]} -gt 1 && "${image_healthcheck[0]}" == "CMD" ]]; then
  # The HEALTHCHECK command itself, as the runtime would run it: in the running container.
  target="$(ip netns pids "${netns}" | while read -r pid; do
    [[ "$(cat "/proc/${pid}/comm" 2>/dev/null)" == "deno" ]] && echo "${pid}" && break
  done || true)"
  if [[ -n "${target}" ]] && nsenter --target "${target}" --mount --pid --net --root --wd \
    -S "${uid}" -G "${gid}" -- /usr/bin/env -i "${run_env[@]}" \
    "${image_healthcheck[@]:1}" >"${work_dir}/health.log" 2>&1; then
    pass "the HEALTHCHECK command exits 0 inside the running image"
  else
    cat "${work_dir}/health.log"
    fail "the HEALTHCHECK command fails inside the running image"
  fi
fi

# ---------------------------------------------------------------------------------------------
step "Writes went only to /data"

# The root file system was read-only, so a write anywhere else would have failed the service.
# Show that it was not only the mount: as uid 1000 on a writable copy of the image, the app
# folder refuses writes and /data takes them.
# shellcheck disable=SC2016
probe='
set -u
root=$1 scratch=$2 uid=$3 gid=$4 workdir=$5
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/merged"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$scratch/upper,workdir=$scratch/work" \
  "$scratch/merged" || exit 2
for target in "$workdir/probe" "$workdir/server/probe" /data/probe; do
  if chroot --userspec="$uid:$gid" "$scratch/merged" /usr/bin/touch "$target" 2>/dev/null; then
    echo "writable $target"
  else
    echo "refused $target"
  fi
done
'
probe_out="$(unshare --mount --propagation private bash -c "${probe}" probe "${root}" \
  "${work_dir}/probe" "${uid}" "${gid}" "${image_workdir}" 2>&1)" || true
echo "${probe_out}"
if grep -q "^refused ${image_workdir}/probe$" <<<"${probe_out}" &&
  grep -q "^refused ${image_workdir}/server/probe$" <<<"${probe_out}" &&
  grep -q "^writable /data/probe$" <<<"${probe_out}"; then
  pass "uid ${uid} cannot write in ${image_workdir} even on a writable root; it can write /data"
else
  fail "uid ${uid} write permissions are not as expected"
fi
echo "the volume now holds:"
(cd "${volume}" && find . -mindepth 1 -printf '  %M %U:%G %10s %P\n' | sort -k4)

# ---------------------------------------------------------------------------------------------
step "docker stop: SIGTERM to PID 1"
if [[ -n "${init_pid}" ]]; then
  kill -TERM "${init_pid}"
  t0=${SECONDS}
  while kill -0 "${server_pid}" 2>/dev/null && ((SECONDS - t0 < SERVER_STOP_TIMEOUT_SEC)); do
    sleep 0.2
  done
  if kill -0 "${server_pid}" 2>/dev/null; then
    fail "the service did not exit within ${SERVER_STOP_TIMEOUT_SEC} s of SIGTERM"
  else
    wait "${server_pid}" && code=0 || code=$?
    server_pid=""
    init_pid=""
    if [[ ${code} -eq 0 ]]; then
      pass "SIGTERM stops the service cleanly (exit 0) in $(elapsed "${t0}")"
    else
      fail "after SIGTERM the service exited with ${code}"
    fi
    tail -n 3 "${server_log}"
  fi
else
  fail "no PID 1 found in the service's namespace"
fi
