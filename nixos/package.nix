# The peerix daemon, built from this checkout with nixpkgs' buildNpmPackage and run by Node 22.
{
  lib,
  stdenv,
  buildNpmPackage,
  importNpmLock,
  nodejs_22,
}:
let
  packageJson = lib.importJSON ../package.json;

  # Only what the build reads, so editing tests or docs does not rebuild the package.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
      ../tsconfig.json
      ../src
      (lib.fileset.maybeMissing ../protocols)
    ];
  };

  # npm's own names for this platform ("linux", "x64"/"arm64"): optional packages for other
  # platforms are left out of the download (see npm-lock.nix).
  inherit (stdenv.hostPlatform.node) platform arch;
in
buildNpmPackage {
  pname = "peerix";
  inherit (packageJson) version;
  inherit src;

  # Node 22 builds the package, compiles better-sqlite3 against its headers and runs `peerix`
  # (the bin wrapper from npmInstallHook uses this nodejs).
  nodejs = nodejs_22;

  # Dependencies come straight from package-lock.json's integrity hashes (importNpmLock), so
  # there is no npmDepsHash to keep in step with the lock file by hand: a lock change is picked
  # up by the next build and every tarball is still checked against the lock's sha512.
  npmDeps = importNpmLock {
    npmRoot = src;
    package = packageJson;
    packageLock = import ./npm-lock.nix {
      lockFile = ../package-lock.json;
      os = platform;
      cpu = arch;
    };
  };
  # importNpmLock's hook points node-gyp at a Node source tree; it must be the Node that runs
  # peerix, or better-sqlite3's addon fails to load with a NODE_MODULE_VERSION mismatch.
  npmConfigHook = importNpmLock.npmConfigHook.override { nodejs = nodejs_22; };

  # better-sqlite3's install script tries a prebuilt binary download first; there is no network
  # in the sandbox, so go straight to node-gyp (sqlite's C source ships in the npm package).
  env.npm_config_build_from_source = "true";

  # The test suite needs root, network namespaces and a Nix client; it runs in CI, not here.
  doCheck = false;

  # Keep only the compiled addon of better-sqlite3: its build tree (objects, Makefiles naming the
  # Node source) and bundled C sources are tens of MB and would drag Node's source into the closure.
  postInstall = ''
    addon=$out/lib/node_modules/peerix/node_modules/better-sqlite3
    mv $addon/build/Release/better_sqlite3.node $TMPDIR/
    rm -rf $addon/build $addon/deps $addon/src
    install -D -m 0555 $TMPDIR/better_sqlite3.node $addon/build/Release/better_sqlite3.node
  '';

  meta = {
    description = "A peer-to-peer Nix binary cache for home labs, on libp2p";
    license = lib.licenses.mit;
    mainProgram = "peerix";
    platforms = lib.platforms.linux;
  };
}
