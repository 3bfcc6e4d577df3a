# Evaluates nixos/module.nix with plain nix-instantiate (CI has no nixpkgs): a small stand-in
# for the parts of nixpkgs' lib, pkgs and utils the module uses, enough to type-check the values
# given to services.peerix and compute the config the module produces. A lib function the module
# starts to use and this file lacks shows up as a missing attribute, not as a silent pass.
{
  # A NixOS configuration (attrset) that sets services.peerix, e.g. the original's setup block.
  configuration,
  # Where stand-in packages point (their bin/ can be made to exist for systemd-analyze).
  stubDir,
  enableIPv6 ? true,
}:
let
  b = builtins;

  stubPackage = name: {
    type = "derivation";
    inherit name;
    outPath = "${stubDir}/${name}";
  };

  type = name: check: { inherit name check; };
  types = {
    bool = type "boolean" b.isBool;
    str = type "string" b.isString;
    int = type "signed integer" b.isInt;
    port = type "16 bit unsigned integer" (v: b.isInt v && v >= 0 && v <= 65535);
    ints.unsigned = type "unsigned integer" (v: b.isInt v && v >= 0);
    ints.positive = type "positive integer" (v: b.isInt v && v > 0);
    ints.between = lo: hi: type "integer between ${toString lo} and ${toString hi} (both inclusive)" (v: b.isInt v && v >= lo && v <= hi);
    path = type "path" (v: b.isPath v || (b.isString v && b.substring 0 1 v == "/"));
    package = type "package" (v: b.isAttrs v && (v.type or null) == "derivation");
    listOf = t: type "list of ${t.name}" (v: b.isList v && b.all t.check v);
    nullOr = t: type "null or ${t.name}" (v: v == null || t.check v);
    enum = values: type "one of ${b.toJSON values}" (v: b.elem v values);
    oneOf = ts: type (b.concatStringsSep " or " (map (t: t.name) ts)) (v: b.any (t: t.check v) ts);
  };

  lib = {
    inherit types;
    inherit (b) concatMap concatStringsSep;
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = what: {
      _type = "option";
      type = types.bool;
      default = false;
      description = "Whether to enable ${what}.";
    };
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkDefault = content: {
      _type = "override";
      inherit content;
    };
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    optionalString = cond: s: if cond then s else "";
    hasInfix =
      infix: s:
      let
        n = b.stringLength infix;
        last = b.stringLength s - n;
      in
      last >= 0 && b.any (i: b.substring i n s == infix) (b.genList (i: i) (last + 1));
    toList = x: if b.isList x then x else [ x ];
    unique = b.foldl' (acc: x: if b.elem x acc then acc else acc ++ [ x ]) [ ];
  };

  # nixpkgs' nixos/lib/utils.nix: JSON-quote each argument, escape systemd's % and $.
  utils.escapeSystemdExecArgs =
    args:
    b.concatStringsSep " " (
      map (
        arg:
        b.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (
          b.toJSON (if b.isString arg then arg else toString arg)
        )
      ) args
    );

  pkgs = {
    callPackage = _path: _args: stubPackage "peerix";
    writeShellScript = name: _text: stubPackage name;
  };

  evaluated = import ../../nixos/module.nix {
    inherit
      config
      lib
      pkgs
      utils
      ;
  };
  declared = evaluated.options.services.peerix;
  settings = configuration.services.peerix;

  undeclared = b.filter (name: !(declared ? ${name})) (b.attrNames settings);
  checked =
    name: option:
    if !(settings ? ${name}) then
      option.default
    else if option.type.check settings.${name} then
      settings.${name}
    else
      throw "services.peerix.${name}: a ${b.typeOf settings.${name}} is not a ${option.type.name}";
  cfg =
    if undeclared != [ ] then
      throw "services.peerix: no such option: ${b.concatStringsSep ", " undeclared}"
    else
      b.mapAttrs checked declared;

  # The module's mkIf/mkDefault markers, resolved the way the module system would for a single
  # definition: false conditions drop the attribute, priorities are ignored.
  absent = {
    _absent = true;
  };
  isAbsent = v: b.isAttrs v && v ? _absent;
  resolve =
    v:
    if b.isAttrs v && (v._type or null) == "if" then
      (if v.condition then resolve v.content else absent)
    else if b.isAttrs v && (v._type or null) == "override" then
      resolve v.content
    else if b.isAttrs v && !(v ? _type) && (v.type or null) != "derivation" then
      let
        resolved = b.mapAttrs (_: resolve) v;
      in
      b.removeAttrs resolved (b.filter (n: isAbsent resolved.${n}) (b.attrNames resolved))
    else
      v;

  # One value by its attribute path, resolving only the markers on the way: lazy where `resolve`
  # is not, so the module may read a setting it also defines (nix.settings) without a loop.
  unwrap =
    v:
    if b.isAttrs v && (v._type or null) == "if" then
      (if v.condition then unwrap v.content else absent)
    else if b.isAttrs v && (v._type or null) == "override" then
      unwrap v.content
    else
      v;
  select =
    names: v:
    let
      here = unwrap v;
      name = b.head names;
    in
    if names == [ ] then
      here
    else if b.isAttrs here && here ? ${name} then
      select (b.tail names) here.${name}
    else
      absent;
  selectOr =
    fallback: names:
    let
      v = select names evaluated.config;
    in
    if isAbsent v then fallback else resolve v;

  result = resolve evaluated.config;
  produced = if isAbsent result then { } else result;

  config = {
    services.peerix = cfg;
    networking.enableIPv6 = enableIPv6;
    nix.settings = {
      trusted-public-keys = [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
      extra-trusted-public-keys = selectOr [ ] [
        "nix"
        "settings"
        "extra-trusted-public-keys"
      ];
    };
  };
in
{
  options = b.attrNames declared;
  config = produced;
}
