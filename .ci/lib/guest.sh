# Shared by .ci/vcan-tests and .ci/usb-tests: Debian's kernel (unpacked, not installed) and
# virtme-ng, to run tests inside a QEMU guest that sees this machine's filesystem.
# Recipes: shared/reference/socketcan-in-a-vm.md, shared/reference/usb-devices-in-a-vm.md.
# Sourced with $repo set; defines guest_prepare (sets $vmlinuz, $kver, PATH) and guest_boot.

# guest_prepare PKG...: the Debian packages the guest needs besides QEMU (their commands).
guest_prepare() {
    local missing=() cmd_pkg
    for cmd_pkg in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static modprobe:kmod \
        udevadm:udev ip:iproute2 timeout:coreutils "$@"; do
        command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || missing+=("${cmd_pkg#*:}")
    done
    if ((${#missing[@]})); then
        echo "-- apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi

    # The kernel .deb, unpacked. The metapackage names the current ABI.
    local kdir=$repo/target/vm-kernel kpkg
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)
    if [[ -z "$kpkg" ]]; then
        apt-get update -qq
        kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)
    fi
    if [[ -z "$kpkg" ]]; then
        echo "guest: apt knows no linux-image-*-amd64 package (apt-get update?)" >&2
        return 2
    fi
    kver=${kpkg#linux-image-}
    vmlinuz=$kdir/root/boot/vmlinuz-$kver
    if [[ ! -f $vmlinuz || ! -f $kdir/root/lib/modules/$kver/modules.dep ]]; then
        echo "-- fetching $kpkg"
        rm -rf "$kdir"
        mkdir -p "$kdir/root"
        (cd "$kdir" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" >/dev/null)
        dpkg -x "$kdir"/"$kpkg"_*.deb "$kdir/root"
        rm -f "$kdir"/*.deb
        # The .deb has no modules.dep (its postinst makes it); the guest's modprobe needs it.
        depmod -b "$kdir/root" "$kver"
    fi

    # virtme-ng from PyPI in a venv; `vng` runs `virtme-run` through PATH.
    local venv=$repo/target/vng-venv
    if [[ ! -x $venv/bin/vng ]]; then
        echo "-- pip install virtme-ng"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check virtme-ng
    fi
    export PATH=$venv/bin:$PATH
}

# guest_boot LIMIT_S SCRIPT [VNG_ARGS...]: boots the kernel, runs SCRIPT as root, returns its
# exit code (124 when LIMIT_S passed). $GUEST_CPUS vCPUs (default 2). Through a pipe: QEMU writes the guest's console straight
# to its stdout, which would clobber a log file it shared.
guest_boot() {
    local limit=$1 script=$2 status
    shift 2
    set +e
    timeout -k 10 "$limit" vng --run "$vmlinuz" --user root --disable-kvm --force-9p --cpus "${GUEST_CPUS:-2}" \
        --memory 1G "$@" --exec "$script" </dev/null 2>&1 | cat
    status=${PIPESTATUS[0]}
    set -e
    if ((status == 124)); then
        echo "guest: did not finish within $limit s" >&2
    fi
    return "$status"
}
