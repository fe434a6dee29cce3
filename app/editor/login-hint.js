/*
 * npm start's editor page script. Node-RED returns settings.editorTheme.login.message from auth/login
 * but its credentials login dialog does not show it (only strategy logins do), so show it here: the
 * hint that the password is the admin token, and where that is kept.
 */
(function () {
  'use strict';
  var observer = new MutationObserver(addHint);
  function addHint() {
    var form = document.getElementById('node-dialog-login-fields');
    if (!form || !document.getElementById('node-dialog-login-password') || form.querySelector('.esp-e2ee-login-hint')) return;
    $.getJSON('auth/login').then(function (data) {
      if (!data.loginMessage || form.querySelector('.esp-e2ee-login-hint')) return;
      $('<div class="form-row esp-e2ee-login-hint">').text(data.loginMessage).prependTo(form);
    });
  }
  observer.observe(document.documentElement, { childList: true, subtree: true });
  // Once the flows are loaded the login is over: stop watching.
  RED.events.on('flows:loaded', function () { observer.disconnect(); });
})();
