# Two hosts on one VLAN. `builder` builds a small derivation; `fetcher` gets it through its own
# peerix (peers found with mDNS), refuses it while builder's key is not trusted, and keeps
# building when its peerix is stopped. Run by the flake: `nix build .#checks.x86_64-linux.vm`.
# The flake imports services.peerix into every node (`defaults`).
{ lib, ... }:
let
  # A throwaway key pair made for this test alone (nix-store --generate-binary-cache-key).
  builderKey = {
    secret = "peerix-vm-test-a-1:/Fil6PVLxV6iDodxqLy0PhIJJW9mJLZPXmtMLL8wdhm56qiT5wf6Hc1JRu3xAwKpbsOiYYoea8lwHs5H9BBqfQ==";
    public = "peerix-vm-test-a-1:ueqok+cH+h3NSUbt8QMCqW7DomGKHmvJcB7OR/QQan0=";
  };

  common = {
    services.peerix.enable = true;
    # No internet in the test: peerix is the only substituter.
    nix.settings.substituters = lib.mkForce [ ];
    nix.settings.experimental-features = [ "nix-command" ];
    # The driver gives each VM a default route out of eth0 (user-mode networking); send mDNS's
    # multicast to the VLAN the other host is on.
    networking.interfaces.eth1.ipv4.routes = [
      {
        address = "224.0.0.0";
        prefixLength = 4;
      }
    ];
  };
in
{
  name = "peerix";

  nodes.builder =
    { pkgs, ... }:
    {
      imports = [ common ];
      services.peerix = {
        # As a string, as agenix would give it: read through LoadCredential at start.
        privateKeyFile = "${pkgs.writeText "peerix-vm-test-a.sk" builderKey.secret}";
        publicKeyFile = "${pkgs.writeText "peerix-vm-test-a.pk" builderKey.public}";
        # What it builds is signed by nobody else; serve it to any peer for this test.
        serve = "all";
      };
    };

  nodes.fetcher = {
    imports = [ common ];
    # No privateKeyFile: the service generates one in its state directory.
    services.peerix.trustedPublicKeys = [ builderKey.public ];
    specialisation.distrust.configuration = {
      services.peerix.trustedPublicKeys = lib.mkForce [ ];
    };
  };

  testScript = ''
    def build(machine, word, timeout=900):
        """A one-file store path that exists only where it is built (no sandbox: /bin/sh is the host's)."""
        expr = (
            'derivation { name = "peerix-vm-test-' + word + '"; system = builtins.currentSystem;'
            ' builder = "/bin/sh"; args = [ "-c" "echo ' + word + ' > $out" ]; }'
        )
        return machine.succeed(f"nix-build --option sandbox false --no-out-link -E '{expr}'", timeout=timeout).strip()

    def wait_for_peer(machine):
        """Until a libp2p connection between the two hosts is up."""
        machine.wait_until_succeeds(
            "ss -Htn state established '( sport = :12305 or dport = :12305 )' | grep -q 192.168.1.",
            timeout=120,
        )

    def narinfo_url(path):
        return "http://127.0.0.1:12304/" + path.removeprefix("/nix/store/")[:32] + ".narinfo"

    start_all()
    for m in (builder, fetcher):
        m.wait_for_unit("peerix.service")
        m.wait_for_open_port(12304)

    with subtest("the daemon runs as its own dynamic user under a syscall filter"):
        for m in (builder, fetcher):
            pid = m.succeed("systemctl show -p MainPID --value peerix").strip()
            m.succeed(f"test \"$(stat -c %U /proc/{pid})\" = peerix")
            m.succeed("systemctl show -p SystemCallFilter --value peerix | grep -qw read")
            m.fail("systemctl show -p SystemCallFilter --value peerix | grep -qw reboot")

    with subtest("keys: builder's from a credential, fetcher's generated on first start"):
        builder.fail("test -e /var/lib/peerix/signing-key")
        builder.succeed("journalctl -u peerix | grep -q 'peerix-vm-test-a-1:ueqok'")
        fetcher.succeed("test \"$(stat -L -c %a /var/lib/peerix/signing-key)\" = 600")

    with subtest("fetcher substitutes what builder built, signed by builder's key"):
        path = build(builder, "one")
        fetcher.fail(f"test -e {path}")
        fetcher.wait_until_succeeds(f"nix-store --realise {path}", timeout=240)
        fetcher.succeed(f"grep -qx one {path}")
        fetcher.succeed(f"nix path-info --sigs {path} | grep -q peerix-vm-test-a-1:")

    with subtest("without builder's key trusted, fetcher refuses builder's paths"):
        path = build(builder, "two")
        fetcher.succeed("/run/current-system/specialisation/distrust/bin/switch-to-configuration test")
        fetcher.wait_for_unit("peerix.service")
        fetcher.wait_for_open_port(12304)
        wait_for_peer(fetcher)
        fetcher.fail(f"curl -sf {narinfo_url(path)}")
        fetcher.fail(f"nix-store --realise {path}")
        fetcher.fail(f"test -e {path}")

    with subtest("trusted again, fetcher gets it (the miss is not remembered for an hour)"):
        fetcher.succeed("/run/booted-system/bin/switch-to-configuration test")
        fetcher.wait_for_unit("peerix.service")
        fetcher.wait_until_succeeds(f"nix-store --realise {path}", timeout=240)
        fetcher.succeed(f"grep -qx two {path}")

    with subtest("a stopped peerix does not break building"):
        fetcher.succeed("systemctl stop peerix")
        path = build(fetcher, "three", timeout=120)
        fetcher.succeed(f"grep -qx three {path}")
  '';
}
