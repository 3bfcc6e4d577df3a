# package-lock.json with a "resolved" URL for every package fetched from the npm registry.
#
# npm leaves "resolved" out of the lock when it points at the default registry
# (`omit-lockfile-registry-resolved`), but nixpkgs' importNpmLock fetches only entries that
# have one. The registry's tarball URL is a fixed function of name and version, and the lock's
# "integrity" (sha512) still pins the bytes, so adding the URL back changes nothing npm installs
# and needs no hand-kept npmDepsHash. Plain builtins only, so CI's bare Nix can evaluate it.
#
# Given the host's Node platform names (`os` "linux", `cpu` "x64"), optional packages built for
# other platforms (esbuild's two dozen binaries, fsevents) get no URL: npm skips them anyway, and
# importNpmLock would otherwise download every one of them.
{ lockFile, os ? null, cpu ? null, registry ? "https://registry.npmjs.org" }:
let
  lock = builtins.fromJSON (builtins.readFile lockFile);

  lastOf = list: builtins.elemAt list (builtins.length list - 1);
  splitOn = sep: text: builtins.filter builtins.isString (builtins.split sep text);

  # "node_modules/a/node_modules/@s/b" installs "@s/b"; an aliased entry names its real package.
  packageName = path: entry: entry.name or (lastOf (splitOn "node_modules/" path));

  # The registry serves "@s/b@1.0.0" as "<registry>/@s/b/-/b-1.0.0.tgz".
  tarballUrl = name: version: "${registry}/${name}/-/${lastOf (splitOn "/" name)}-${version}.tgz";

  # npm's "os"/"cpu" lists: names allow, "!name" forbids; a list of only "!" entries allows the rest.
  allows = list: value:
    value == null || !(builtins.elem "!${value}" list)
    && (builtins.elem value list || builtins.all (x: builtins.substring 0 1 x == "!") list);
  forThisHost = entry: !(entry.optional or false) || allows (entry.os or [ ]) os && allows (entry.cpu or [ ]) cpu;

  # The root package, links and bundled dependencies (no integrity of their own) stay as they are.
  fromRegistry = path: entry:
    path != "" && entry ? integrity && entry ? version && !(entry ? resolved) && !(entry.link or false)
    && forThisHost entry;

  withResolved = path: entry:
    if fromRegistry path entry
    then entry // { resolved = tarballUrl (packageName path entry) entry.version; }
    else entry;
in
lock // { packages = builtins.mapAttrs withResolved lock.packages; }
