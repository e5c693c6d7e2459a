// Upload with a progress bar; without JavaScript the form posts normally.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;
  var bar = document.getElementById("upload-progress");
  var label = document.getElementById("upload-progress-label");
  var input = form.querySelector('input[type="file"]');
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var max = input ? Number(input.dataset.maxBytes) : 0;
    if (max && input.files.length && input.files[0].size > max) {
      label.textContent = input.dataset.tooLarge;  // the server would answer 413 with the same
      return;
    }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    bar.hidden = false;
    xhr.upload.onprogress = function (e) {
      if (!e.lengthComputable) return;
      bar.value = Math.round((e.loaded / e.total) * 100);
      label.textContent = "Uploading… " + bar.value + "% (" + Math.round(e.loaded / 1048576) + " of " + Math.round(e.total / 1048576) + " MB)";
    };
    xhr.onload = function () {
      if (xhr.responseURL && xhr.responseURL !== form.action && xhr.status < 400) {
        window.location.assign(xhr.responseURL);
      } else {
        document.open(); document.write(xhr.responseText); document.close();
      }
    };
    xhr.onerror = function () { label.textContent = "The upload failed: the connection was interrupted. Nothing was stored; try again."; };
    label.textContent = "Uploading…";
    xhr.send(new FormData(form));
  });
});
