#!/usr/bin/env python3
"""CycloneDX 1.5 SBOM (JSON) of one collector .deb, from what the build really used.

usage: sbom.py ARCH VERSION PROJECT_ASSETS_JSON DEB OUTPUT

Components: every NuGet package the restore resolved for the architecture's runtime identifier
(compiled into the Native AOT binary; SQLite's native library comes from SQLitePCLRaw.lib.e_sqlite3),
the runtime packs compiled in, the ILCompiler that compiled it (scope "excluded": a build tool,
not in the package), and the Debian packages the .deb depends on (from its control file).
Reproducible: the timestamp is SOURCE_DATE_EPOCH and the serial number is derived from the content.
"""
import base64, datetime, hashlib, json, os, subprocess, sys, uuid

arch, version, assets_path, deb, output = sys.argv[1:6]
rid = {"amd64": "linux-x64", "arm64": "linux-arm64"}[arch]
assets = json.load(open(assets_path))


def nuget(name, ver, sha512=None, scope="required", note=None):
    c = {"type": "library", "bom-ref": f"pkg:nuget/{name}@{ver}", "name": name, "version": ver,
         "purl": f"pkg:nuget/{name}@{ver}", "scope": scope}
    if sha512:
        c["hashes"] = [{"alg": "SHA-512", "content": base64.b64decode(sha512).hex()}]
    if note:
        c["description"] = note
    return c


# MSBuild integration of the compiler and of the trimmer: they run at build time, nothing of them
# is in the package. (runtime.<rid>.Microsoft.DotNet.ILCompiler of the target RID is: its static
# runtime libraries are linked into the executable.)
BUILD_TOOLS = {"Microsoft.DotNet.ILCompiler", "Microsoft.NET.ILLink.Tasks"}
target = next(v for k, v in assets["targets"].items() if k.endswith("/" + rid))
components = {}
for key, lib in sorted(assets["libraries"].items()):
    if lib.get("type") != "package" or key not in target:
        continue
    name, ver = key.split("/", 1)
    tool = name in BUILD_TOOLS
    c = nuget(name, ver, lib.get("sha512"), scope="excluded" if tool else "required", note="build tool" if tool else None)
    components.setdefault(c["bom-ref"], c)
for framework in assets["project"]["frameworks"].values():
    for d in sorted(framework.get("downloadDependencies", []), key=lambda d: d["name"]):
        ver = d["version"].strip("[]").split(",")[0].strip()
        # The ILCompiler of another RID is the compiler running on the build machine.
        tool = "ILCompiler" in d["name"] and f".{rid}." not in f".{d['name']}."
        c = nuget(d["name"], ver, scope="excluded" if tool else "required",
                  note="Native AOT compiler on the build machine (build tool)" if tool else "compiled into the executable")
        components.setdefault(c["bom-ref"], c)
components = list(components.values())

control = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], check=True, capture_output=True, text=True).stdout.strip()
for dep in [d.strip() for d in control.split(",") if d.strip()]:
    name = dep.split()[0].split(":")[0]
    constraint = dep[len(dep.split()[0]):].strip()
    components.append({"type": "library", "bom-ref": f"pkg:deb/debian/{name}?arch={arch}", "name": name,
                       "purl": f"pkg:deb/debian/{name}?arch={arch}", "scope": "required",
                       "description": f"Debian dependency {constraint}".strip()})

deb_sha256 = hashlib.sha256(open(deb, "rb").read()).hexdigest()
main_ref = f"pkg:deb/debian/collector@{version}?arch={arch}"
epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or subprocess.run(
    ["git", "log", "-1", "--format=%ct"], capture_output=True, text=True).stdout.strip() or 0)
bom = {
    "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
    "metadata": {
        "timestamp": datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "component": {"type": "application", "bom-ref": main_ref, "name": "collector", "version": version,
                      "purl": main_ref, "description": "sia-exporter traffic collector, Debian package for " + arch,
                      "hashes": [{"alg": "SHA-256", "content": deb_sha256}]},
    },
    "components": components,
    "dependencies": [{"ref": main_ref, "dependsOn": [c["bom-ref"] for c in components if c["scope"] == "required"]}],
}
body = json.dumps(bom, sort_keys=True)
bom["serialNumber"] = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, hashlib.sha256(body.encode()).hexdigest()))
with open(output, "w") as f:
    json.dump(bom, f, indent=2, sort_keys=True)
    f.write("\n")
