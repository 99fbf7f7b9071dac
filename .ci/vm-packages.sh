#!/usr/bin/env bash
# .ci/vm-packages.sh — install what contlab's "vm tier" (tests/vm/run) needs.
#
# Sourced by the CI script (or run directly) as root on a fresh Debian
# bookworm machine. It installs:
#   qemu-system-x86   the emulator (from bookworm-backports, see below)
#   qemu-utils        kept at the backports version (bookworm's would clash)
#   linux-image-amd64 a stock Debian kernel: /boot/vmlinuz-* + /lib/modules/*
#   busybox-static    the guest's tiny initramfs userland
#   kmod              modprobe (used to resolve module dependencies)
#   xz-utils          unpacks the kernel once, so that boots skip that step
#   dmsetup, thin-provisioning-tools   device-mapper tools used by guest tests
#
# Why backports: some machines come with qemu-utils from bookworm-backports;
# installing bookworm's qemu-system-x86 would downgrade/remove it. Taking
# both from backports keeps them at one matching version.
#
# Safe to run more than once. Written as a function so that sourcing it
# does not leak variables or `set` options into the caller.

contlab_vm_packages() (
    set -euo pipefail
    export DEBIAN_FRONTEND=noninteractive

    # Reuse whatever Debian mirror the machine is already configured with.
    local mirror=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        # deb822 format: "URIs: http://host/debian"
        mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' \
                     /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
        # one-line format: "deb [opts] http://host/debian bookworm main"
        mirror=$(awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^https?:\/\//) {print $i; exit}}' \
                     /etc/apt/sources.list | grep -v security | head -n1 || true)
    fi
    mirror=${mirror:-http://deb.debian.org/debian}

    # Add bookworm-backports unless some source already provides it.
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "vm-packages: adding bookworm-backports from $mirror"
        echo "deb $mirror bookworm-backports main" \
            > /etc/apt/sources.list.d/contlab-backports.list
    fi

    apt-get update

    # The kernel package's postinst runs initramfs/bootloader hooks. In a
    # container there is no bootloader; we only need the vmlinuz file and
    # the modules, so tolerate those hooks being no-ops.
    apt-get install -y --no-install-recommends \
        -t bookworm-backports qemu-system-x86 qemu-utils
    apt-get install -y --no-install-recommends \
        linux-image-amd64 busybox-static kmod xz-utils dmsetup thin-provisioning-tools

    # Check the results rather than trusting exit codes alone.
    command -v qemu-system-x86_64 >/dev/null
    ls /boot/vmlinuz-* >/dev/null
    ls -d /lib/modules/*/kernel/fs/9p >/dev/null
    test -x /bin/busybox
    echo "vm-packages: ok ($(qemu-system-x86_64 --version | head -n1);" \
         "kernel(s): $(cd /boot && echo vmlinuz-*))"
)

contlab_vm_packages "$@"
