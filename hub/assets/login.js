// Shows the failure notice after a refused login (the server redirects to /login?failed=1).
"use strict";
if (new URLSearchParams(location.search).has("failed")) {
  document.getElementById("failed").hidden = false;
}
