# Calls flake.nix's outputs with a stand-in nixpkgs (CI has none): what the flake exposes, per
# system, and what its NixOS module and test are made of.
let
  b = builtins;
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  stubPkgs = system: {
    stdenv.hostPlatform.system = system;
    callPackage = path: _args: {
      type = "derivation";
      name = "peerix";
      outPath = "/stub/${system}/peerix";
      path = toString path;
    };
    testers.runNixOSTest = test: {
      type = "derivation";
      name = "vm-test";
      inherit test;
    };
    mkShell = args: {
      type = "derivation";
      name = "shell";
      inherit args;
    };
    nodejs_22 = "nodejs_22";
    python3 = "python3";
    nix = "nix";
    iproute2 = "iproute2";
  };
  nixpkgs = {
    lib.genAttrs = names: f: b.listToAttrs (map (name: { inherit name; value = f name; }) names);
    legacyPackages = b.listToAttrs (map (name: { inherit name; value = stubPkgs name; }) systems);
  };
  self = (import ../../flake.nix).outputs { inherit self nixpkgs; };

  # The flake's module as NixOS would call it on a given system.
  moduleOn =
    system:
    self.nixosModules.peerix {
      lib = {
        mkIf = condition: content: if condition then content else null;
        mkDefault = content: content;
      };
      pkgs = stubPkgs system;
    };
  names = b.mapAttrs (_: b.attrNames);
in
{
  packages = names self.packages;
  checks = names self.checks;
  devShells = names self.devShells;
  nixosModules = b.attrNames self.nixosModules;
  defaultIsPeerix = b.all (s: self.packages.${s}.default.outPath == self.packages.${s}.peerix.outPath) systems;
  packageFile = self.packages.x86_64-linux.peerix.path;
  # On a system the flake builds no package for, the module's own default applies (null here).
  modulePackage = nixpkgs.lib.genAttrs (systems ++ [ "riscv64-linux" ]) (
    s:
    let
      package = (moduleOn s).services.peerix.package;
    in
    if package == null then null else package.outPath
  );
  moduleImports = map toString (moduleOn "x86_64-linux").imports;
  vmTest = {
    imports = map toString self.checks.x86_64-linux.vm.test.imports;
    # Functions do not compare equal in Nix: check the one import is the flake's module by calling it.
    defaultsImport = map (m: (m { lib = { mkIf = _: x: x; mkDefault = x: x; }; pkgs = stubPkgs "x86_64-linux"; }).services.peerix.package.outPath) self.checks.x86_64-linux.vm.test.defaults.imports;
  };
  overlay = (self.overlays.default (stubPkgs "x86_64-linux") { }).peerix.path;
}
