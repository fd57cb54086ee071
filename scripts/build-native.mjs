// Placeholder: builds the optional CBLAS addon; never fails the install.
console.log('build-native: native addon not built yet');
