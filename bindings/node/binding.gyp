{
  # For `npm install` users with libsli installed system-wide (pkg-config libsli): node-gyp builds
  # build/Release/sli.node, which lib/native.js finds.
  "targets": [
    {
      "target_name": "sli",
      "sources": ["src/addon.c", "src/seal.c", "src/age.c", "src/keys.c", "src/certs.c", "src/tls.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-fvisibility=hidden",
                 "<!@(pkg-config --cflags libsli)"],
      "libraries": ["<!@(pkg-config --libs libsli)"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
