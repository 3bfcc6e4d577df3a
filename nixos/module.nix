# services.peerix: a peer-to-peer Nix binary cache on every host of a LAN.
#
# Drop-in for the original Peerix module (same option names for what it had), without its pain:
# the signing key is read through systemd's LoadCredential instead of from the store, keys are a
# list, the service runs as a private DynamicUser under a hardening set, Nix forgets a miss after
# a minute instead of an hour, and a stopped peerix never breaks nixos-rebuild.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  cfg = config.services.peerix;
  inherit (lib) mkOption types;

  splitWords = text: builtins.filter (w: builtins.isString w && w != "") (builtins.split "[[:space:]]+" text);

  # A publicKeyFile given as a Nix path can be read now; a string path only once the host runs.
  publicKeyFileIsPathLiteral = cfg.publicKeyFile != null && builtins.isPath cfg.publicKeyFile;

  # Hosts' keys: the list, the original's space-separated `publicKey`, and, as the original
  # did, this host's own `publicKeyFile` (a fleet sharing one key pair trusts itself by it).
  peerKeys = lib.unique (
    cfg.trustedPublicKeys
    ++ lib.optionals (cfg.publicKey != null) (splitWords cfg.publicKey)
    ++ lib.optionals publicKeyFileIsPathLiteral (splitWords (builtins.readFile cfg.publicKeyFile))
  );

  # The daemon checks a peer's narinfo against every key Nix trusts (cache.nixos.org's included:
  # a peer mostly relays what it downloaded from there) plus the peers' own keys. Passed
  # explicitly so the unit says what the daemon trusts.
  daemonKeys = lib.unique (
    lib.toList (config.nix.settings.trusted-public-keys or [ ])
    ++ lib.toList (config.nix.settings.extra-trusted-public-keys or [ ])
    ++ peerKeys
  );

  keyIsPathLiteral = cfg.privateKeyFile != null && builtins.isPath cfg.privateKeyFile;

  # Nix connects here; a wildcard listen address is still reached through loopback.
  substituterHost =
    if cfg.listenAddress == "0.0.0.0" then
      "127.0.0.1"
    else if cfg.listenAddress == "::" then
      "[::1]"
    else if lib.hasInfix ":" cfg.listenAddress then
      "[${cfg.listenAddress}]"
    else
      cfg.listenAddress;
  listenHost = if lib.hasInfix ":" cfg.listenAddress then "[${cfg.listenAddress}]" else cfg.listenAddress;
  substituterUrl = "http://${substituterHost}:${toString cfg.port}";

  # Every address unless some are named. Binding "::" fails where IPv6 is off, and the daemon
  # would not start at all.
  p2pListenAddresses =
    if cfg.p2pListenAddresses != [ ] then
      cfg.p2pListenAddresses
    else
      [ "0.0.0.0" ] ++ lib.optional config.networking.enableIPv6 "::";
  p2pMultiaddr = addr: "/${if lib.hasInfix ":" addr then "ip6" else "ip4"}/${addr}/tcp/${toString cfg.p2pPort}";

  daemonArgs =
    [
      "daemon"
      "--listen"
      "${listenHost}:${toString cfg.port}"
    ]
    ++ lib.concatMap (addr: [ "--p2p-listen" (p2pMultiaddr addr) ]) p2pListenAddresses
    ++ [
      "--priority"
      cfg.priority
      "--timeout"
      cfg.timeout
      "--log-level"
      cfg.logLevel
    ]
    ++ lib.optionals (daemonKeys != [ ]) [
      "--trusted-public-keys"
      (lib.concatStringsSep " " daemonKeys)
    ]
    ++ [
      "--public-cache-keys"
      (lib.concatStringsSep " " cfg.publicCacheKeys)
    ]
    ++ lib.concatMap (peer: [ "--trusted-peer" peer ]) cfg.trustedPeers
    ++ lib.concatMap (addr: [ "--peer" addr ]) cfg.staticPeers
    ++ lib.optional (!cfg.mdns) "--no-mdns"
    ++ lib.optionals (cfg.serve != "trusted") [ "--serve" cfg.serve ]
    ++ lib.concatMap (glob: [ "--serve-deny" glob ]) cfg.serveDeny
    ++ lib.optional cfg.peersOnly "--peers-only"
    ++ lib.optionals (cfg.wireCompression != "auto") [ "--wire-compression" cfg.wireCompression ]
    ++ cfg.extraArgs;

  # %d is systemd's credentials directory; written after the escaped arguments because
  # escapeSystemdExecArgs would turn the % into a literal one.
  signingKeyArg = lib.optionalString (cfg.privateKeyFile != null) " --signing-key-file %d/signing-key";

  logPublicKey = pkgs.writeShellScript "peerix-public-key" ''
    echo "publicKeyFile: this host's public key is $(cat "$CREDENTIALS_DIRECTORY/public-key")"
  '';
in
{
  options.services.peerix = {
    enable = lib.mkEnableOption "peerix, a peer-to-peer Nix binary cache: a local substituter that fetches store paths from the other hosts' stores and serves this host's store to them";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "peerix.packages.\${system}.peerix (the flake's own package)";
      description = "The peerix package to run.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Open the libp2p port (TCP `p2pPort`) and mDNS (UDP 5353) so other hosts can find and
        reach this one. The HTTP substituter stays on loopback and is never opened. On by
        default, as in the original.
      '';
    };

    listenAddress = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = "Address of the HTTP substituter Nix talks to. Keep it on loopback: a non-loopback address also lets other machines use it.";
    };

    port = mkOption {
      type = types.ints.between 1 65535;
      default = 12304;
      description = "Port of the HTTP substituter (the original's port).";
    };

    p2pPort = mkOption {
      type = types.ints.between 1 65535;
      default = 12305;
      description = "TCP port for libp2p connections from other hosts, on IPv4 and (when enabled) IPv6.";
    };

    p2pListenAddresses = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "100.64.0.5" ];
      description = ''
        IP addresses libp2p listens on (port `p2pPort`); `[ ]`: every address. Peers are told
        only these, so naming a VPN's address keeps peerix off the other networks. Each must
        exist when the daemon starts.
      '';
    };

    priority = mkOption {
      type = types.ints.between 0 1000;
      default = 20;
      description = "Substituter priority announced to Nix; lower is asked first (cache.nixos.org is 40).";
    };

    timeout = mkOption {
      type = types.ints.between 1 600000;
      default = 1000;
      description = "Milliseconds a lookup waits for peers that have not answered yet; peers that answer \"absent\" end it sooner.";
    };

    privateKeyFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/agenix/peerix-private";
      description = ''
        Secret key (`peerix keygen` or `nix-store --generate-binary-cache-key`) that signs what this
        host serves. Give it as a string: systemd reads it at start (LoadCredential) and it never
        enters the Nix store, so agenix/sops-nix secret paths work. A path literal such as
        `./peerix-private` still works but is copied into the world-readable store (a warning
        says so). When null, peerix generates a key in its state directory on first start and
        logs the public key.
      '';
    };

    publicKeyFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = ''
        This host's public key, as in the original: trusted by Nix and the daemon like
        `trustedPublicKeys` (a fleet sharing one key pair trusts itself by it) and logged when the
        service starts. Read when the configuration is evaluated, so only a Nix path is trusted;
        a string path is only logged (a warning says so).
      '';
    };

    publicKey = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "peerix-laptop:1ZjzxYFhzeRMni4CyK2uKHjgo6xy0= peerix-desktop:...";
      description = "The original's space-separated list of trusted keys; merged with `trustedPublicKeys`.";
    };

    trustedPublicKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "peerix-laptop:1ZjzxYFhzeRMni4CyK2uKHjgo6xy0=" ];
      description = "Public keys of the other hosts. Added to Nix's trusted-public-keys and given to the daemon with the keys Nix already trusts.";
    };

    publicCacheKeys = mkOption {
      type = types.listOf types.str;
      default = [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
      description = ''
        Keys of public caches: a path one of them signed could be downloaded by anyone, so it is
        served to any peer. Add the keys of other public caches you use (cachix); never the
        hosts' own keys, which also sign what a host keeps to its trusted peers.
      '';
    };

    trustedPeers = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "libp2p peer IDs (see `peerix status` on each host) that may fetch paths only this host has, such as local builds.";
    };

    staticPeers = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "/ip4/10.0.0.5/tcp/12305" ];
      description = "Multiaddrs of peers to stay connected to where mDNS does not reach (VPN, other subnet).";
    };

    mdns = mkOption {
      type = types.bool;
      default = true;
      description = "Find peers on the LAN with mDNS.";
    };

    serve = mkOption {
      type = types.enum [
        "trusted"
        "all"
      ];
      default = "trusted";
      description = ''
        What other hosts may fetch: "trusted" serves paths signed by a key in `publicCacheKeys`
        (by default cache.nixos.org's) to anyone and the rest only to `trustedPeers`; "all"
        serves every path to anyone, as the original did.
      '';
    };

    serveDeny = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "*-secrets" ];
      description = "Globs of store path names never served, in addition to the daemon's own deny list.";
    };

    peersOnly = mkOption {
      type = types.bool;
      default = false;
      description = "Refuse libp2p connections from peers not in `trustedPeers`.";
    };

    wireCompression = mkOption {
      type = types.enum [
        "auto"
        "zstd"
        "off"
      ];
      default = "auto";
      description = ''
        zstd on the wire between peers: "auto" asks a peer for compressed NARs once its earlier
        ones came in slowly (Wi-Fi, VPN), and on links up to gigabit speed while compressed ones
        come faster; "zstd" asks every peer, "off" neither asks nor compresses for peers.
      '';
    };

    logLevel = mkOption {
      type = types.enum [
        "error"
        "warn"
        "info"
        "debug"
      ];
      default = "info";
      description = "How much the daemon logs to the journal.";
    };

    narinfoCacheNegativeTTL = mkOption {
      type = types.ints.unsigned;
      default = 60;
      description = ''
        Seconds Nix remembers that a path was missing (Nix's narinfo-cache-negative-ttl, 3600 by
        default). With an hour, a path a peer gets later stays invisible for that hour; a
        minute costs a few more lookups that peerix answers from its own memory.
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "More arguments for `peerix daemon`.";
    };

    user = mkOption {
      type = types.oneOf [
        types.str
        types.int
      ];
      default = "peerix";
      description = ''
        Name of the account the daemon runs as. The service always uses systemd's DynamicUser,
        which allocates this account while it runs, unless an account of that name exists, which
        is then used. Accepted for the original's configurations; its default `nobody` is shared
        with other services and only draws a warning.
      '';
    };

    group = mkOption {
      type = types.oneOf [
        types.str
        types.int
      ];
      default = "peerix";
      description = "Group of the daemon's account; see `user`.";
    };

    globalCacheTTL = mkOption {
      type = types.nullOr types.int;
      default = null;
      description = "The original's option: when set, both Nix's narinfo-cache-positive-ttl and narinfo-cache-negative-ttl, in seconds (replacing `narinfoCacheNegativeTTL`).";
    };
  };

  config = lib.mkIf cfg.enable {
    warnings =
      lib.optional keyIsPathLiteral ''
        services.peerix.privateKeyFile is the Nix path ${toString cfg.privateKeyFile}, so the
        secret key was copied into the world-readable /nix/store. Give the path as a string instead
        (privateKeyFile = "/var/lib/peerix-keys/private"; or an agenix/sops-nix secret path), move
        the key out of your configuration repository, then run nix-collect-garbage -d once no
        generation refers to the copy.
      ''
      ++ lib.optional (cfg.publicKeyFile != null && !publicKeyFileIsPathLiteral) ''
        services.peerix.publicKeyFile is the string ${toString cfg.publicKeyFile}, which cannot be
        read when the configuration is evaluated: it is only logged at start, not trusted. Put
        the key in services.peerix.trustedPublicKeys to trust it.
      ''
      ++ lib.optional (toString cfg.user == "nobody" || toString cfg.group == "nobody") ''
        services.peerix runs as nobody, an account shared with other services. Remove
        services.peerix.user and group to give it its own dynamic account.
      '';

    # `peerix keygen` and `peerix status` on the command line.
    environment.systemPackages = [ cfg.package ];

    nix.settings = {
      extra-substituters = [ substituterUrl ];
      extra-trusted-public-keys = peerKeys;
      # If peerix is stopped or a peer vanishes mid-download, build or use the next substituter
      # instead of failing: peerix must never be the reason nixos-rebuild fails.
      fallback = lib.mkDefault true;
      # ... and do not wait long on a substituter that is not there.
      connect-timeout = lib.mkDefault 5;
      narinfo-cache-negative-ttl = lib.mkDefault (
        if cfg.globalCacheTTL != null then cfg.globalCacheTTL else cfg.narinfoCacheNegativeTTL
      );
      narinfo-cache-positive-ttl = lib.mkIf (cfg.globalCacheTTL != null) (lib.mkDefault cfg.globalCacheTTL);
    };

    networking.firewall = lib.mkIf cfg.openFirewall {
      allowedTCPPorts = [ cfg.p2pPort ];
      allowedUDPPorts = lib.optional cfg.mdns 5353;
    };

    systemd.services.peerix = {
      description = "peerix: peer-to-peer Nix binary cache";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];

      serviceConfig = {
        ExecStartPre = lib.mkIf (cfg.publicKeyFile != null) [ logPublicKey ];
        ExecStart = "${cfg.package}/bin/peerix ${utils.escapeSystemdExecArgs daemonArgs}${signingKeyArg}";
        # The V8 flag the daemon is built for (src/daemon/node-flags.ts): a small young generation
        # keeps its memory near 100 MB while NARs stream. The bin wrapper runs node directly, so
        # the shebang's copy of the flag does not apply here.
        Environment = [ "NODE_OPTIONS=--max-semi-space-size=1" ];
        # Read by systemd (as root) at start and handed to the service in a private directory.
        LoadCredential =
          lib.optional (cfg.privateKeyFile != null) "signing-key:${cfg.privateKeyFile}"
          ++ lib.optional (cfg.publicKeyFile != null) "public-key:${cfg.publicKeyFile}";
        Restart = "on-failure";
        RestartSec = "5s";

        DynamicUser = true;
        User = toString cfg.user;
        Group = toString cfg.group;
        # The libp2p identity and a generated signing key live here (STATE_DIRECTORY).
        StateDirectory = "peerix";
        StateDirectoryMode = "0700";
        UMask = "0077";

        # The store and Nix's database are only read (SQLite opened read-only).
        ProtectSystem = "strict";
        ReadOnlyPaths = [
          "/nix/store"
          "/nix/var/nix/db"
        ];
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectProc = "invisible";
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        RestrictSUIDSGID = true;
        RestrictNamespaces = true;
        RestrictRealtime = true;
        LockPersonality = true;
        # Netlink: Node lists network interfaces (mDNS, listen addresses) through it.
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
          "AF_NETLINK"
        ];
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        SystemCallErrorNumber = "EPERM";
        # V8 compiles JavaScript to machine code at run time, which needs writable+executable
        # memory: with W^X enforced Node aborts at start.
        MemoryDenyWriteExecute = false;
      };
    };
  };
}
