//! mini's devicemapper storage driver (`--storage-driver devicemapper`), in the vm
//! tier: a thin pool on loop devices, each image layer a thin snapshot of the one
//! below, each container a snapshot of its image, mounted as its root.

mod guest {
    use crate::harness::{require, Tier};
    use crate::mini::{ok, section};

    /// The pool and its loops go at the end of each test, passed or not: the guest's
    /// other tests check that no device-mapper device is left.
    struct PoolGone;

    impl Drop for PoolGone {
        fn drop(&mut self) {
            let _ = std::process::Command::new("sh").args(["-c", "dmsetup remove_all --force; losetup -D"]).output();
        }
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn guest_devicemapper_containers_are_thin_snapshots_of_their_image() {
        if !require(Tier::Guest) {
            return;
        }
        let _g = PoolGone;
        let out = ok(r#"
d() { mini -q --storage-driver devicemapper "$@"; }
d run --name c1 --network none test/ex01 sh -c 'echo one > /mine; cat /flag; grep " / " /proc/mounts | cut -d" " -f1,3'
echo "== graph"; d inspect -f '{{.Driver}} {{.GraphDriver.Name}} {{.GraphDriver.Data.DeviceName}} {{.GraphDriver.Data.DeviceSize}}' c1 | sed "s/$(d inspect -f '{{.Id}}' c1)/ID/; s/mini_[0-9]*_[0-9]*/P/"
echo "== id"; d inspect -f '{{.GraphDriver.Data.DeviceId}}' c1 | grep -c '^[0-9][0-9]*$'
echo "== volumes"; jq -r '.devices | keys | length' $CONTLAB_ROOT/devicemapper/devices.json
echo "== c2"; d run --name c2 --network none test/ex01 sh -c 'ls /mine 2>&1; echo two > /mine'
echo "== isolated"; d start -a c1 >/dev/null; d run --rm --network none test/ex01 cat /mine 2>&1
echo "== stopped"; dmsetup ls | cut -f1 | sed 's/^mini_[0-9]*_[0-9]*/P/' | sort
d run -d --name c3 --network none test/ex01 sleep 300 >/dev/null
echo "== running"; dmsetup ls | cut -f1 | grep -c "^mini_[0-9]*_[0-9]*-$(d inspect -f '{{.Id}}' c3)$"
echo "== restart"; d exec c3 sh -c 'echo kept > /kept'; d restart -t 0 c3 >/dev/null; d exec c3 cat /kept
d rm -f c1 c2 c3 >/dev/null
echo "== after-rm"; jq -r '.devices | keys | length' $CONTLAB_ROOT/devicemapper/devices.json; dmsetup ls | cut -f1 | sed 's/^mini_[0-9]*_[0-9]*/P/' | sort
echo "== overlay-too"; mini -q run --rm --network none test/ex01 sh -c 'grep " / " /proc/mounts | cut -d" " -f3'
d rmi test/ex01 >/dev/null
echo "== rmi"; jq -r '.devices | keys | length' $CONTLAB_ROOT/devicemapper/devices.json
"#);
        // A thin volume's ext4 on /dev/mapper, as docker's devicemapper did.
        assert!(out.starts_with("Well done !!! you've finished exercice\n/dev/mapper/mini_"), "{out}");
        assert!(out.contains(" ext4\n"), "{out}");
        assert_eq!(section(&out, "graph"), "devicemapper devicemapper P-ID 2147483648\n");
        assert_eq!(section(&out, "id"), "1\n");
        // base + 2 layers + c1's init and own volumes.
        assert_eq!(section(&out, "volumes"), "5\n");
        assert_eq!(section(&out, "isolated"), "cat: can't open '/mine': No such file or directory\n");
        assert_eq!(section(&out, "c2"), "ls: /mine: No such file or directory\n");
        // A stopped container's volume is not active: only the pool is.
        assert_eq!(section(&out, "stopped"), "P_pool\n");
        assert_eq!(section(&out, "running"), "1\n");
        assert_eq!(section(&out, "restart"), "kept\n");
        assert_eq!(section(&out, "after-rm"), "3\nP_pool\n");
        assert_eq!(section(&out, "overlay-too"), "overlay\n");
        // rmi takes the image's own layer volume with it; its bottom layer is
        // test/alpine's too, and stays with the base.
        assert_eq!(section(&out, "rmi"), "2\n");
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn guest_devicemapper_kill_9_halfway_leaves_nothing_the_next_command_keeps() {
        if !require(Tier::Guest) {
            return;
        }
        let _g = PoolGone;
        // The pool made and the image's layers in it first; then a create killed while
        // its init volume (pending) is being mounted (mount #1), or while its own
        // volume is (mount #2: the init volume done, its own pending).
        for (call, nth) in [("mount", 1), ("mount", 2)] {
            let out = ok(&format!(
                r#"
d() {{ mini -q --storage-driver devicemapper "$@"; }}
d run --rm --network none test/alpine true
CONTLAB_FAULT={call}:{nth}:stop mini -q --storage-driver devicemapper run -d --name f1 --network none test/alpine sleep 300 >/dev/null 2>&1 &
cli=$!
for i in $(seq 1 300); do
  s=$(for p in $(pgrep -f 'mini -q'); do awk '{{print $3}}' /proc/$p/stat 2>/dev/null; done | grep -c T)
  [ "$s" -gt 0 ] && break; sleep 0.05
done
echo "== stopped"; echo $s
for p in $(pgrep -f 'mini -q'); do kill -9 $p 2>/dev/null; done
wait $cli 2>/dev/null
d rm -f f1 >/dev/null 2>&1
d run --rm --network none test/alpine true
echo "== left"
jq -r '.devices | keys | length' $CONTLAB_ROOT/devicemapper/devices.json
jq -r '.pending | length' $CONTLAB_ROOT/devicemapper/devices.json
# This store's devices only (each iteration's store has a pool of its own).
P=$(jq -r .prefix $CONTLAB_ROOT/devicemapper/devices.json); dmsetup ls | cut -f1 | grep "^$P" | sed "s/^$P/P/"
grep -c "$CONTLAB_ROOT/devicemapper/mnt" /proc/self/mountinfo; true
"#
            ));
            assert_eq!(section(&out, "stopped"), "1\n", "mini did not stop at {call} #{nth}");
            assert_eq!(section(&out, "left"), "2\n0\nP_pool\n0\n", "after kill -9 at {call} #{nth}");
        }
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn guest_devicemapper_diff_and_commit_compare_the_volume_with_its_init_layer() {
        if !require(Tier::Guest) {
            return;
        }
        let _g = PoolGone;
        // STORAGE-EX3 on the devicemapper driver: no upper directory to read, so diff
        // walks the container's volume against its init layer's; commit packs those
        // changes, and the new image's top layer becomes a thin snapshot of its own.
        let out = ok(r#"
d() { mini -q --storage-driver devicemapper "$@"; }
d run --name mydeb --network none test/alpine sh -c 'rm -rf /root; mkdir -p /home; dd if=/dev/urandom of=/home/random bs=8500 count=1 2>/dev/null; echo "Tagada tsoin tsoin" >> /etc/motd'
echo "== diff"; d diff mydeb
echo "== commit"; d commit mydeb deb:new | grep -c '^sha256:'
d rm mydeb >/dev/null
echo "== new"; d run --rm --network none deb:new sh -c 'cat /etc/motd; ls -l /home/random | awk "{print \$5}"; ls -d /root 2>&1'
echo "== history"; mini -q history --no-trunc deb:new --format '{{.CreatedBy}}' | head -1
echo "== layers"; mini -q inspect -f '{{len .RootFS.Layers}}' deb:new
"#);
        assert_eq!(section(&out, "diff"), "C /etc\nA /etc/motd\nA /home\nA /home/random\nD /root\n", "{out}");
        assert_eq!(section(&out, "commit"), "1\n");
        assert_eq!(section(&out, "new"), "Tagada tsoin tsoin\n8500\nls: /root: No such file or directory\n");
        assert!(section(&out, "history").contains("dd if=/dev/urandom"), "{out}");
        assert_eq!(section(&out, "layers"), "2\n");
    }
}
