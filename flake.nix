{
  description = "peerix: a peer-to-peer Nix binary cache for home labs, on libp2p";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: {
        peerix = pkgs.callPackage ./nixos/package.nix { };
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.peerix;
      });

      overlays.default = final: _prev: { peerix = final.callPackage ./nixos/package.nix { }; };

      # The module's package defaults to this flake's own build: no overlay needed.
      nixosModules.peerix =
        { lib, pkgs, ... }:
        let
          inherit (pkgs.stdenv.hostPlatform) system;
        in
        {
          imports = [ ./nixos/module.nix ];
          services.peerix.package = lib.mkIf (self.packages ? ${system}) (
            lib.mkDefault self.packages.${system}.peerix
          );
        };
      nixosModules.default = self.nixosModules.peerix;

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.peerix;
        # Two VMs on one VLAN: B substitutes what A built, through peerix over mDNS.
        vm = pkgs.testers.runNixOSTest {
          imports = [ ./nixos/tests/peerix.nix ];
          defaults.imports = [ self.nixosModules.peerix ];
        };
      });

      devShells = forAllSystems (pkgs: {
        # What `bash scripts/test.sh` needs: Node, a C++ toolchain for better-sqlite3, a Nix
        # client and iproute2 for the network-namespace tests (run them as root).
        default = pkgs.mkShell {
          packages = [
            pkgs.nodejs_22
            pkgs.python3
            pkgs.nix
            pkgs.iproute2
          ];
        };
      });
    };
}
